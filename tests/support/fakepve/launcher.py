"""Starts one fakepve (PyPI `fakepve[crypto]==0.5.0`) for ballast's tests, seeded, with a control port.

API tokens and fault injection exist only in fakepve's Python API, so the tests cannot drive them over
the PVE API itself. This launcher starts a `FakePve` in this process and serves its scenarios on a
second, plain-HTTP port on 127.0.0.1 (`POST /control/<action>` with a JSON body); the Rust test
support (`tests/src/fakepve.rs`) is its only client.

Both ports are chosen by the system (port 0); once both listen, one JSON line goes to stdout:
`{"api_port": N, "control_port": M}`. Secrets come from the environment, never from argv (which any
user can read): FAKEPVE_TOKEN_ID / FAKEPVE_TOKEN_SECRET (the API token) and FAKEPVE_USER /
FAKEPVE_PASSWORD (the ticket login). The launcher exits when its stdin closes, so a test process that
dies however it dies takes its fakepve with it.

The seed (what every test may rely on):
- nodes pve1, pve2, pve3 (cluster "fakecluster", quorate);
- storages local (dir: iso, vztmpl, backup), local-lvm (lvmthin: images, rootdir), ceph-pool (rbd,
  shared: images, rootdir);
- the LXC template volume local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst;
- the QEMU template 9000 "debian-12-template" on pve1: scsi0 a 4 GiB base volume on local-lvm, a
  cloud-init drive on ide2, net0 on vmbr0;
- the pool "homelab".
"""

import argparse
import asyncio
import json
import os
import sys

from aiohttp import web

from fakepve import FakePve

SEED_TEMPLATE_VMID = 9000
SEED_CT_TEMPLATE = 'debian-12-standard_12.7-1_amd64.tar.zst'
GIB = 1024 ** 3


def seed(pve):
    for node in ('pve1', 'pve2', 'pve3'):
        pve.add_node(node)
    pve.add_ceph_storage('ceph-pool')
    pve.store_file('local', SEED_CT_TEMPLATE, 120 * 1024 ** 2, content='vztmpl')
    # The template's disk is a real volume of the storage, so a clone copies its size.
    disk = 'base-{0}-disk-0'.format(SEED_TEMPLATE_VMID)
    pve.storages['local-lvm'].setdefault('volumes', {})[disk] = {
        'content': 'images', 'format': 'raw', 'size': 4 * GIB, 'vmid': SEED_TEMPLATE_VMID, 'ctime': 0}
    pve.add_vm(SEED_TEMPLATE_VMID, 'debian-12-template', node='pve1', template=True, config={
        'cores': 1, 'memory': 1024, 'ostype': 'l26', 'scsihw': 'virtio-scsi-single',
        'scsi0': 'local-lvm:{0},size=4G'.format(disk),
        'ide2': 'local-lvm:vm-{0}-cloudinit,media=cdrom'.format(SEED_TEMPLATE_VMID),
        'net0': 'virtio=BC:24:11:00:90:00,bridge=vmbr0', 'boot': 'order=scsi0', 'template': 1})
    pve.pools.setdefault('homelab', set())
    pve._pool_meta('homelab')


def guest_state(guest):
    """What a test may assert on that the API does not show (or shows only through the client under test)."""
    return {'vmid': guest.vmid, 'node': guest.node, 'status': guest.status, 'config': guest.config,
            'pending': guest.pending, 'lock': guest.lock, 'pool': guest.pool}


class Control(object):
    """The scenarios, one handler per action."""

    def __init__(self, pve):
        self.pve = pve

    def guest(self, body):
        guest = self.pve.guest(int(body['vmid']))
        if guest is None:
            raise web.HTTPNotFound(text='no guest {0}'.format(body['vmid']))
        return guest

    async def time_scale(self, body):
        self.pve.time_scale = float(body['value'])

    async def lose_quorum(self, body):
        self.pve.lose_quorum()

    async def regain_quorum(self, body):
        self.pve.regain_quorum()

    async def node_offline(self, body):
        self.pve.set_node_offline(body['node'], bool(body.get('offline', True)))

    async def fail(self, body):
        self.pve.fail(body['method'], body['suffix'], status=body.get('status'), message=body.get('message'),
                      error=body.get('error'), times=body.get('times'))

    async def clear_failures(self, body):
        self.pve.failures.clear()

    async def snapshot_lock(self, body):
        self.pve.snapshot_lock(int(body['vmid']), body.get('lock', 'snapshot'))

    async def unlock(self, body):
        self.pve.unlock(int(body['vmid']))

    async def hold_config_lock(self, body):
        await self.pve.hold_config_lock(int(body['vmid']), body.get('secs'))

    async def release_config_lock(self, body):
        self.pve.release_config_lock(int(body['vmid']))

    async def backup(self, body):
        return await self.pve.backup(int(body['vmid']), secs=float(body.get('secs', 30)))

    async def guest_settings(self, body):
        guest = self.guest(body)
        for key in ('start_error', 'start_secs', 'shutdown_secs', 'stop_secs'):
            if key in body:
                setattr(guest, key, body[key])

    async def set_config(self, body):
        # A change made behind the client's back (another user, the web UI).
        guest = self.guest(body)
        guest.config[body['key']] = body['value']

    async def ct_secs(self, body):
        self.pve.ct_secs[body['op']] = float(body['secs'])

    async def ceph_slow(self, body):
        self.pve.ceph_slow(float(body['secs']))

    async def ceph_recover(self, body):
        self.pve.ceph_recover()

    async def revoke_tickets(self, body):
        self.pve.revoke_tickets()

    async def ticket_ttl(self, body):
        self.pve.ticket_ttl = float(body['secs'])

    async def add_vm(self, body):
        vm = self.pve.add_vm(int(body['vmid']), body['name'], node=body.get('node', 'pve1'),
                             status=body.get('status', 'stopped'), config=body.get('config') or {},
                             template=bool(body.get('template', False)), pool=body.get('pool'))
        return guest_state(vm)

    async def add_ct(self, body):
        ct = self.pve.add_ct(int(body['vmid']), body.get('name'), node=body.get('node', 'pve1'),
                             status=body.get('status', 'stopped'), config=body.get('config') or {},
                             template=bool(body.get('template', False)), pool=body.get('pool'))
        return guest_state(ct)

    async def guest_info(self, body):
        return guest_state(self.guest(body))

    async def requests(self, body):
        return [{'method': m, 'path': p} for (m, p, _body) in self.pve.requests]

    async def clear_requests(self, body):
        self.pve.requests.clear()


def control_app(pve):
    control = Control(pve)

    async def handle(request):
        action = request.match_info['action']
        handler = getattr(control, action, None)
        if handler is None or action.startswith('_') or action == 'guest':
            return web.json_response({'error': 'unknown action {0}'.format(action)}, status=404)
        body = await request.json() if request.can_read_body else {}
        try:
            result = await handler(body)
        except web.HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - the test gets the reason, not a hung request
            return web.json_response({'error': '{0}: {1}'.format(type(e).__name__, e)}, status=400)
        return web.json_response({'result': result})

    app = web.Application()
    app.router.add_post('/control/{action}', handle)
    return app


async def wait_for_stdin_eof():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cert', required=True)
    parser.add_argument('--key', required=True)
    args = parser.parse_args()

    pve = FakePve(user=os.environ['FAKEPVE_USER'], password=os.environ['FAKEPVE_PASSWORD'], host='127.0.0.1',
                  port=0)
    pve.apitokens[os.environ['FAKEPVE_TOKEN_ID']] = os.environ['FAKEPVE_TOKEN_SECRET']
    seed(pve)
    await pve.start(args.cert, args.key)

    runner = web.AppRunner(control_app(pve))
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    control_port = runner.addresses[0][1]

    print(json.dumps({'api_port': pve.port, 'control_port': control_port}), flush=True)
    try:
        await wait_for_stdin_eof()
    finally:
        await runner.cleanup()
        await pve.stop()


if __name__ == '__main__':
    asyncio.run(main())
