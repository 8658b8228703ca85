/**
 * `ooo` as an operator uses it: `seed up` in the foreground, then the CLI with clouds.yaml —
 * import, provision with --wait, JSON output, exit codes; SIGTERM stops the seed cleanly.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { eventually } from '../helpers/seed.js';

const OOO = join(process.cwd(), 'bin', 'ooo');

function freePort(): Promise<number> {
  return new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); }); });
}

describe('ooo CLI end to end', () => {
  let seed: ChildProcess;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let out = '';
  const ooo = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(OOO, args, { env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-cli-'));
    const port = await freePort();
    seed = spawn(OOO, ['seed', 'up', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
    seed.stdout!.on('data', (d) => { out += d; });
    seed.stderr!.on('data', (d) => { out += d; });
    await eventually(async () => existsSync(join(dir, 'clouds.yaml')) && out.includes('running at'), 20_000, 'the seed to start');
    env = { ...process.env, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), OS_CLOUD: 'ooo' };
  });
  after(() => { seed.kill('SIGKILL'); });

  test('import an inventory and take the nodes to active and back with --wait', async () => {
    const inv = join(dir, 'inventory.yaml');
    writeFileSync(inv, [
      'nodes:',
      '  - name: rack1-0',
      '    driver: sim',
      '    driver_info: {sim_delay_ms: 10, sim_deploy_s: 0.2}',
      '    ports: [{address: "52:54:00:00:00:01"}]',
      '  - name: rack1-1',
      '    driver: sim',
      '    driver_info: {sim_delay_ms: 10, sim_deploy_s: 0.2}',
      '    ports: [{address: "52:54:00:00:00:02"}]',
    ].join('\n'));
    const imp = await ooo('node', 'import', inv);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, /enrolled rack1-0 .* in enroll/);
    const m = await ooo('node', 'manage', 'rack1-0', 'rack1-1', '--wait');
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /rack1-0: manageable/);
    assert.equal((await ooo('node', 'provide', 'rack1-0', 'rack1-1', '--wait')).code, 0);
    assert.equal((await ooo('node', 'set', 'rack1-0', '--instance-info', 'image_source=img1')).code, 0);
    const d = await ooo('node', 'deploy', 'rack1-0', '--wait');
    assert.equal(d.code, 0, d.stderr);
    const show = await ooo('node', 'show', 'rack1-0', '--json');
    const node = JSON.parse(show.stdout);
    assert.equal(node.provision_state, 'active');
    assert.equal(node.power_state, 'power on');
    const list = await ooo('node', 'list');
    assert.match(list.stdout, /rack1-0\s+power on\s+active/);
    const ports = JSON.parse((await ooo('port', 'list', '--node', 'rack1-1', '--json')).stdout);
    assert.equal(ports[0].address, '52:54:00:00:00:02');
    assert.equal((await ooo('node', 'undeploy', 'rack1-0', '--wait')).code, 0);
    const hist = await ooo('node', 'history', 'rack1-0');
    assert.match(hist.stdout, /active -> deleting/);
  });

  test('a failed deploy exits 1 and says why; a missing node exits 3; a bad flag exits 2', async () => {
    await ooo('node', 'create', '--driver', 'sim', '--name', 'broken', '--driver-info', 'sim_fail=deploy', '--driver-info', 'sim_delay_ms=0', '--instance-info', 'image_source=x');
    await ooo('node', 'manage', 'broken', '--wait');
    await ooo('node', 'provide', 'broken', '--wait');
    const d = await ooo('node', 'deploy', 'broken', '--wait');
    assert.equal(d.code, 1);
    assert.match(d.stderr, /broken: failed: .*image write failed/);
    const missing = await ooo('node', 'show', 'no-such-node');
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /no-such-node could not be found/);
    const usage = await ooo('node', 'list', '--colour');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown option --colour/);
    const noImage = await ooo('node', 'deploy', 'rack1-1', '--wait');
    assert.equal(noImage.code, 1, noImage.stderr);
    assert.match(noImage.stderr, /instance_info\.image_source is required/);
  });

  test('without a cloud configured the CLI says what to set (exit 6 when the seed is down)', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => execFile(OOO, ['node', 'list'], { env: { PATH: process.env.PATH, HOME: dir } }, (e, _o, stderr) => resolve({ code: e ? Number(e.code) : 0, stderr })));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /OS_CLOUD=ooo/);
    const down = await new Promise<{ code: number; stderr: string }>((resolve) => execFile(OOO, ['node', 'list'], { env: { ...env, OS_CLOUD: undefined, OS_CLIENT_CONFIG_FILE: undefined, OS_AUTH_URL: 'http://127.0.0.1:1/identity', OS_USERNAME: 'a', OS_PASSWORD: 'b' } }, (e, _o, stderr) => resolve({ code: e ? Number(e.code) : 0, stderr })));
    assert.equal(down.code, 6);
    assert.match(down.stderr, /connection refused/);
  });

  test('SIGTERM stops the seed cleanly', async () => {
    const exited = new Promise<number | null>((resolve) => seed.once('exit', (c) => resolve(c)));
    seed.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(out, /SIGTERM: stopping[\s\S]*stopped/);
    assert.ok(!out.includes(JSON.parse(JSON.stringify(out)).match(/password: (\S+)/)?.[1] ?? '\u0000'), 'no password printed');
  });
});
