/**
 * Settings for the services: flags > environment (OOO_*) > defaults. Everything has a default,
 * so `ooo seed up` runs with no configuration at all.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export interface ServiceConfig {
  dataDir: string;
  host: string;
  port: number;
  database: string;
  publicUrl?: string;
  only: Set<'api' | 'conductor'>;
  conductorName?: string;
  conductorGroup: string;
  adminPassword?: string;
  waitTimeoutS?: number;
  powerSyncS?: number;
  /** Seconds without a heartbeat after which a conductor is dead and its nodes are taken over. */
  deadAfterS?: number;
  /** The provisioning network: DHCP/TFTP (dnsmasq) on this interface, machines reach the seed at its address. */
  provisioning?: { interface: string; range?: { start: string; end: string }; discoveryRange?: { start: string; end: string }; nextServer?: string };
}

export function defaultDataDir(): string {
  if (process.env.OOO_DATA_DIR) return resolve(process.env.OOO_DATA_DIR);
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'ooo');
}

export const DEFAULT_PORT = 6385;

export class ConfigError extends Error {}

/** Parses HOST:PORT (or [v6]:PORT, or PORT alone). */
export function parseListen(s: string): { host: string; port: number } {
  const m = s.match(/^\[([^\]]+)\]:(\d+)$/) ?? s.match(/^([^:]+):(\d+)$/) ?? s.match(/^()(\d+)$/);
  if (!m) throw new ConfigError(`--listen must be HOST:PORT (e.g. 127.0.0.1:${DEFAULT_PORT}), got '${s}'`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--listen port must be 0-65535, got '${m[2]}'`);
  return { host: m[1] || '127.0.0.1', port };
}

export function parseOnly(s: string | undefined): Set<'api' | 'conductor'> {
  if (!s) return new Set(['api', 'conductor']);
  const out = new Set<'api' | 'conductor'>();
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (part !== 'api' && part !== 'conductor') throw new ConfigError(`--only takes api and/or conductor (comma-separated), got '${part}'`);
    out.add(part);
  }
  if (!out.size) throw new ConfigError('--only needs at least one service: api, conductor');
  return out;
}
