//! The client against sushy-tools (`sushy-emulator --fake`, the emulator Ironic tests against):
//! service root, basic auth (it offers no sessions), systems, managers, power and
//! `ComputerSystem.Reset`, TLS trust.

use std::time::{Duration, Instant};

use ballast_redfish::{
    AuthMode, BmcConfig, ErrorClass, Operation, PowerState, RedfishClient, RedfishError, ResetType,
    TlsVerify, Vendor,
};
use ballast_test_support::sushy::{SYSTEM_NAME, SYSTEM_UUID, Sushy};

fn client(sushy: &Sushy, password: &str, tls: TlsVerify) -> RedfishClient {
    RedfishClient::new(BmcConfig::from_url(
        sushy.url(),
        sushy.username.clone(),
        password,
        tls,
    ))
    .expect("client")
}

async fn wait_power(client: &RedfishClient, uri: &str, want: PowerState) {
    // The fake driver applies a power change 1 to 11 s after the request.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let system = client.system(uri).await.expect("system");
        if system.power_state.as_ref() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "power state stayed {:?}, expected {want:?}",
            system.power_state
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn basic_auth_fallback_reads_systems_and_managers() {
    let sushy = Sushy::start();
    let c = client(
        &sushy,
        &sushy.password,
        TlsVerify::CaPem(sushy.ca_pem().into()),
    );

    let root = c.service_root().await.expect("root").clone();
    assert_eq!(root.sessions, None, "sushy-tools offers no SessionService");
    assert_eq!(root.vendor, Vendor::Other(String::new()));
    assert_eq!(c.login().await.expect("login"), AuthMode::Basic);

    let systems = c.systems().await.expect("systems");
    assert_eq!(systems.len(), 1, "{systems:?}");
    let system = &systems[0];
    assert_eq!(system.id, SYSTEM_UUID);
    assert_eq!(system.uri, format!("/redfish/v1/Systems/{SYSTEM_UUID}"));
    assert_eq!(system.power_state, Some(PowerState::On));
    assert!(system.status.is_ok(), "{:?}", system.status);
    assert!(system.allows_reset(&ResetType::GracefulRestart));
    assert!(!system.allows_reset(&ResetType::PowerCycle));

    // The system's name redirects (307) to its UUID.
    let by_name = c
        .system(&format!("/redfish/v1/Systems/{SYSTEM_NAME}"))
        .await
        .expect("system by name");
    assert_eq!(by_name.id, SYSTEM_UUID);

    let managers = c.managers().await.expect("managers");
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0].firmware_version.as_deref(), Some("1.00"));
    assert_eq!(managers[0].manager_type.as_deref(), Some("BMC"));

    // Without sessions there is nothing to log out of: close sends nothing.
    c.close().await.expect("close");
    assert_eq!(sushy.logged_requests("DELETE "), 0, "{}", sushy.log());
}

#[tokio::test]
async fn power_off_and_on_through_reset() {
    let sushy = Sushy::start();
    let c = client(
        &sushy,
        &sushy.password,
        TlsVerify::CaPem(sushy.ca_pem().into()),
    );
    let uri = format!("/redfish/v1/Systems/{SYSTEM_UUID}");
    let system = c.system(&uri).await.expect("system");

    // A type the BMC does not list is refused before any request.
    let before = sushy.logged_requests("Actions/ComputerSystem.Reset");
    let err = c
        .reset_system(&system, &ResetType::PowerCycle)
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("GracefulRestart"), "{err}");
    assert_eq!(
        sushy.logged_requests("Actions/ComputerSystem.Reset"),
        before
    );

    let done = c
        .reset_system(&system, &ResetType::ForceOff)
        .await
        .expect("ForceOff");
    assert!(matches!(done, Operation::Done { .. }), "{done:?}");
    wait_power(&c, &uri, PowerState::Off).await;

    c.reset_system(&system, &ResetType::On).await.expect("On");
    wait_power(&c, &uri, PowerState::On).await;
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_to_stop_on() {
    let sushy = Sushy::start();
    let c = client(
        &sushy,
        "not-the-password",
        TlsVerify::CaPem(sushy.ca_pem().into()),
    );
    let err = c.systems().await.unwrap_err();
    assert!(matches!(err, RedfishError::Auth { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Stop);
    assert!(
        err.to_string().contains("Incorrect username or password"),
        "the emulator's message is shown: {err}"
    );
    assert!(!err.to_string().contains("not-the-password"));
    assert!(!format!("{err:?}").contains("not-the-password"));
    assert!(!format!("{c:?}").contains("not-the-password"));
}

#[tokio::test]
async fn tls_trust_by_pin_ca_file_or_insecure_flag() {
    let sushy = Sushy::start();
    let pin = TlsVerify::fingerprint(&sushy.fingerprint()).expect("pin");
    for tls in [
        pin,
        TlsVerify::CaFile(sushy.ca_file()),
        TlsVerify::InsecureSkipVerify,
    ] {
        let c = client(&sushy, &sushy.password, tls.clone());
        c.service_root()
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
    }
    let wrong = TlsVerify::Fingerprint([7u8; 32]);
    let err = client(&sushy, &sushy.password, wrong)
        .service_root()
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::Tls { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Stop);
    assert!(err.to_string().contains("not the pinned"), "{err}");
    // The public roots do not know the test CA.
    let err = client(&sushy, &sushy.password, TlsVerify::PublicRoots)
        .service_root()
        .await
        .unwrap_err();
    assert!(matches!(err, RedfishError::Tls { .. }), "{err}");
}
