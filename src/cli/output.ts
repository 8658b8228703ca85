/**
 * How commands talk to people and scripts: tables for humans, JSON with --json, and exit codes
 * that mean something.
 */
export const EXIT = {
  ok: 0,
  failure: 1, // the operation was attempted and failed (e.g. a node ended in a failed state)
  usage: 2, // the command line was wrong
  notFound: 3, // the named resource does not exist
  conflict: 4, // the resource is locked or in the wrong state
  auth: 5, // authentication or authorisation failed
  unavailable: 6, // the service could not be reached
  timeout: 7, // --wait ran out of time
} as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.failure) { super(message); }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A plain-text table: one header row, columns padded to their widest cell. */
export function table(columns: string[], rows: unknown[][]): string {
  const text = rows.map((r) => r.map(cell));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n');
}

/** Field/value listing for one resource. */
export function record(obj: Record<string, unknown>): string {
  const keys = Object.keys(obj);
  const w = Math.max(5, ...keys.map((k) => k.length));
  return keys.map((k) => `${k.padEnd(w)}  ${cell(obj[k])}`).join('\n');
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
