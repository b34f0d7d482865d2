//! A `kill -9` of `ballast apply` half-way, then a re-apply: everything converges, no container
//! is created twice, and no task is left `running`.

mod common;

use std::time::{Duration, Instant};

use common::Env;

#[test]
fn kill_9_half_way_then_reapply_converges_without_duplicates() {
    let env = Env::new("crash");
    let count = 16;
    let docs: Vec<String> = (0..count)
        .map(|i| env.app(&format!("app{i:02}"), ""))
        .collect();
    env.write("apps.yaml", &docs.join("---\n"));

    let mut child = env
        .command()
        .args(["apply", "--yes", "--parallelism", "2"])
        .spawn()
        .expect("start apply");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let made = env.containers().len();
        if made >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "apply made no progress");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply finished before it could be killed ({status}); raise the app count");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let made = env.containers().len();
    assert!(
        made < count,
        "killed half-way ({made} of {count} containers)"
    );

    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "re-apply converges:\n{run}");
    let names = env.containers();
    assert_eq!(
        names.len(),
        count,
        "one container per app, no duplicates: {names:?}"
    );
    for i in 0..count {
        assert_eq!(
            env.state_of(&format!("app{i:02}")).as_deref(),
            Some("running")
        );
    }
    let tasks = env.json(&["tasks", "--limit", "1000"]);
    let tasks = tasks.as_array().unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t["status"] != "running" && t["status"] != "pending"),
        "no task left running: {tasks:?}"
    );
    assert_eq!(
        env.ballast(&["diff", "--refresh"]).code,
        0,
        "in sync after recovery"
    );
}
