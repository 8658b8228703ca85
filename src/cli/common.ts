/**
 * What the API-talking commands share: the --os-cloud/--json flags, the cloud connection,
 * key=value parsing, error-to-exit-code mapping and waiting for nodes with progress.
 */
import type { FlagSpec, Parsed } from './args.js';
import { Cloud, ClientError, loadCloud } from '../client/cloud.js';
import { CliError, EXIT } from './output.js';

export const CLOUD_FLAGS: Record<string, FlagSpec> = {
  'os-cloud': { type: 'string', help: 'cloud name in clouds.yaml (default: $OS_CLOUD)', value: 'NAME' },
  json: { type: 'boolean', help: 'print JSON for scripts instead of a table' },
};

export const WAIT_FLAGS: Record<string, FlagSpec> = {
  wait: { type: 'boolean', help: 'wait until the operation finishes, printing progress' },
  timeout: { type: 'number', help: 'seconds to wait with --wait', default: 1800, value: 'SECONDS' },
};

export function cloudOf(p: Parsed): Cloud {
  try {
    return new Cloud(loadCloud(p.flags['os-cloud'] as string | undefined));
  } catch (e) {
    throw asCliError(e);
  }
}

export function asCliError(e: unknown): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof ClientError) {
    const code = e.status === 404 ? EXIT.notFound : e.status === 409 ? EXIT.conflict : e.status === 401 || e.status === 403 ? EXIT.auth : e.status === 0 ? EXIT.unavailable : e.status === 400 || e.status === 406 ? EXIT.usage : EXIT.failure;
    return new CliError(e.message, code);
  }
  throw e;
}

/** Runs a command body, turning client errors into clear messages and exit codes. */
export async function guarded(fn: () => Promise<number>): Promise<number> {
  try { return await fn(); } catch (e) { throw asCliError(e); }
}

/** k=v pairs into an object; values that parse as JSON numbers/booleans/objects become those. */
export function keyValues(list: unknown, flag: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of (list as string[] | undefined) ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`--${flag} takes KEY=VALUE, got '${item}'`, EXIT.usage);
    const k = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    let v: unknown = raw;
    if (/^(-?\d+(\.\d+)?|true|false|null|\{.*\}|\[.*\])$/.test(raw)) { try { v = JSON.parse(raw); } catch { v = raw; } }
    out[k] = v;
  }
  return out;
}

export const FAILED_STATES = new Set(['deploy failed', 'clean failed', 'inspect failed', 'adopt failed', 'rescue failed', 'unrescue failed', 'error']);

/**
 * Polls nodes until each reaches `target` (or fails), printing a line per state change.
 * Returns the exit code: 0 all reached it, 1 some failed, 7 timed out.
 */
export async function waitForNodes(cloud: Cloud, idents: string[], target: string, timeoutS: number, quiet = false, startState?: Map<string, string>): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  const last = new Map<string, string>(startState ?? []);
  const pending = new Set(idents);
  let failed = 0;
  const started = Date.now();
  while (pending.size) {
    for (const id of [...pending]) {
      const n = await cloud.baremetal<Record<string, string | null>>('GET', `/v1/nodes/${encodeURIComponent(id)}?fields=uuid,name,provision_state,target_provision_state,last_error,reservation`);
      const state = n.provision_state ?? 'available';
      const label = n.name ?? n.uuid ?? id;
      const rest = (!n.target_provision_state || FAILED_STATES.has(state)) && !n.reservation;
      if (last.get(id) !== state) {
        last.set(id, state);
        if (!quiet) process.stderr.write(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s  ${label}: ${state}${n.target_provision_state ? ` -> ${n.target_provision_state}` : ''}\n`);
      }
      if (state === target && rest) pending.delete(id);
      else if (FAILED_STATES.has(state) || (target !== 'enroll' && state === 'enroll' && rest && last.size > 0 && n.last_error)) {
        if (rest) {
          pending.delete(id);
          failed++;
          process.stderr.write(`        ${label}: failed: ${n.last_error ?? state}\n`);
        }
      }
    }
    if (!pending.size) break;
    if (Date.now() > deadline) {
      process.stderr.write(`timed out after ${timeoutS} s waiting for ${[...pending].join(', ')} to reach ${target}\n`);
      return EXIT.timeout;
    }
    await new Promise((r) => setTimeout(r, idents.length > 50 ? 500 : 200));
  }
  return failed ? EXIT.failure : EXIT.ok;
}
