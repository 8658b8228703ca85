/** python3-sushy (Debian) against our Redfish server: what Ironic's redfish driver does. */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { hasOpenssl, makeCerts, startBmc } from './fixtures.js';

const SCRIPT = fileURLToPath(new URL('../../../../test/protocols/redfish/sushy_peer.py', import.meta.url));
const PY = '/usr/bin/python3';

function sushyMissing(): string | false {
  try { execFileSync(PY, ['-c', 'import sushy'], { stdio: 'pipe' }); return false; } catch { return 'python3-sushy is not installed (apt-get install python3-sushy)'; }
}
const skip = sushyMissing();
if (skip) console.log(`# skipping sushy tests: ${skip}`);

function sushy(url: string, user: string, password: string, system: string, ...actions: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    // requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override verify=False: leave them out.
    const env = { ...process.env };
    delete env.REQUESTS_CA_BUNDLE;
    delete env.CURL_CA_BUNDLE;
    execFile(PY, [SCRIPT, url, user, password, system, ...actions], { timeout: 30000, env }, (err, stdout, stderr) => {
      if (err) { reject(new Error(`sushy failed: ${stderr || err.message}`)); return; }
      resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}

test('sushy lists systems, reads power, sets boot override and resets', { skip }, async () => {
  const bmc = await startBmc(['node-a', 'node-b']);
  try {
    const m = bmc.machines.get('node-b')!;
    const out = await sushy(bmc.url, 'admin', 'secret', '/redfish/v1/Systems/node-b',
      'list', 'power', 'boot:Pxe:Once:UEFI', 'reset:On', 'power', 'boot:Hdd:Continuous', 'reset:ForceRestart', 'reset:ForceOff');
    assert.deepEqual(out[0], { systems: ['/redfish/v1/Systems/node-a', '/redfish/v1/Systems/node-b'] });
    assert.deepEqual(out[1], { power: 'Off' });
    assert.deepEqual(out[2], { boot: { target: 'Pxe', enabled: 'Once', mode: 'UEFI' } });
    assert.deepEqual(out[3], { reset: 'On', power: 'On' });
    assert.deepEqual(out[4], { power: 'On' });
    assert.deepEqual(out[5], { boot: { target: 'Hdd', enabled: 'Continuous', mode: 'UEFI' } });
    assert.deepEqual(out[6], { reset: 'ForceRestart', power: 'On' });
    assert.deepEqual(out[7], { reset: 'ForceOff', power: 'Off' });
    // The first boot used the one-time PXE override, the restart the persistent disk one.
    assert.equal(m.boots, 2);
    assert.equal(m.lastBootDevice, 'disk');
    assert.deepEqual(await m.bootOverride(), { device: 'disk', persistent: true, mode: 'uefi' });
    assert.equal(await bmc.machines.get('node-a')!.powerState(), 'off');
  } finally { await bmc.close(); }
});

test('sushy with a wrong password gets an authentication error', { skip }, async () => {
  const bmc = await startBmc(['node-a']);
  try {
    await assert.rejects(sushy(bmc.url, 'admin', 'wrong', '/redfish/v1/Systems/node-a', 'power'), /AccessError|401|[Aa]uthentication/);
  } finally { await bmc.close(); }
});

test('sushy over HTTPS with a self-signed certificate (verify off)', { skip: skip || (hasOpenssl() ? false : 'openssl is not installed') }, async () => {
  const certs = makeCerts();
  const bmc = await startBmc(['node-a'], { tls: { key: certs.key, cert: certs.cert } });
  try {
    const out = await sushy(bmc.url, 'admin', 'secret', '/redfish/v1/Systems/node-a', 'reset:On', 'power');
    assert.deepEqual(out[1], { power: 'On' });
  } finally { await bmc.close(); }
});
