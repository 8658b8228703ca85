/** Shared fixtures for the Redfish tests: simulated machines behind our server, a throwaway CA. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimMachine } from '../../../src/lab/sim-machine.js';
import type { MachineBackend } from '../../../src/protocols/machine.js';
import { RedfishServer } from '../../../src/protocols/redfish/server.js';

export interface Bmc {
  server: RedfishServer;
  port: number;
  url: string;
  machines: Map<string, SimMachine>;
  close(): Promise<void>;
}

export async function startBmc(names: string[], opts: { tls?: { key: string | Buffer; cert: string | Buffer }; username?: string; password?: string } = {}): Promise<Bmc> {
  const machines = new Map(names.map((n, i) => [n, new SimMachine({ name: n, macs: [`52:54:00:aa:00:${i.toString(16).padStart(2, '0')}`, `52:54:00:bb:00:${i.toString(16).padStart(2, '0')}`] })]));
  const server = new RedfishServer({ machines: machines as Map<string, MachineBackend>, username: opts.username ?? 'admin', password: opts.password ?? 'secret', tls: opts.tls });
  const port = await server.listen(0, '127.0.0.1');
  return { server, port, url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`, machines, close: () => server.close() };
}

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI). */
export function makeCerts(): { dir: string; caPath: string; key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-redfish-tls-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ooo test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'bmc.key', '-out', 'bmc.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  run(['x509', '-req', '-in', 'bmc.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'bmc.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { dir, caPath: join(dir, 'ca.pem'), key: readFileSync(join(dir, 'bmc.key')), cert: readFileSync(join(dir, 'bmc.pem')) };
}

export function hasOpenssl(): boolean {
  try { execFileSync('openssl', ['version'], { stdio: 'pipe' }); return true; } catch { return false; }
}
