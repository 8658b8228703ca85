/**
 * A small, strict command-line parser: every flag is declared, an unknown flag or a missing
 * value is an error that names it. Used by every command group.
 */
export type FlagType = 'string' | 'boolean' | 'number' | 'list';

export interface FlagSpec {
  type: FlagType;
  help: string;
  short?: string;
  default?: string | number | boolean;
  /** Placeholder shown in help, e.g. HOST:PORT. */
  value?: string;
}

export interface CommandSpec {
  /** Words that select the command, e.g. ['node', 'list']. */
  path: string[];
  summary: string;
  /** Positional arguments, e.g. ['NODE'] or ['FILE...'] (trailing ... = any number, ? = optional). */
  args?: string[];
  flags?: Record<string, FlagSpec>;
  run(parsed: Parsed): Promise<number>;
}

export interface Parsed {
  flags: Record<string, string | number | boolean | string[] | undefined>;
  args: string[];
}

export class UsageError extends Error {}

export function parseArgs(spec: CommandSpec, argv: string[]): Parsed {
  const flags: Parsed['flags'] = {};
  const args: string[] = [];
  const defs = spec.flags ?? {};
  const byShort = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) if (def.short) byShort.set(def.short, name);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { args.push(...argv.slice(i + 1)); break; }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (eq >= 0) inline = a.slice(eq + 1);
    } else if (a.length > 1 && a.startsWith('-') && !/^-\d/.test(a)) {
      name = byShort.get(a.slice(1));
      if (!name) throw new UsageError(`unknown option ${a}`);
    } else {
      args.push(a);
      continue;
    }
    const def = defs[name];
    if (!def) throw new UsageError(`unknown option --${name}`);
    if (def.type === 'boolean') {
      if (inline !== undefined && !['true', 'false'].includes(inline)) throw new UsageError(`--${name} takes no value`);
      flags[name] = inline === undefined ? true : inline === 'true';
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value${def.value ? ` (${def.value})` : ''}`);
    if (def.type === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${value}'`);
      flags[name] = n;
    } else if (def.type === 'list') {
      ((flags[name] as string[] | undefined) ?? (flags[name] = [])) && (flags[name] as string[]).push(value);
    } else {
      flags[name] = value;
    }
  }
  for (const [name, def] of Object.entries(defs)) if (flags[name] === undefined && def.default !== undefined) flags[name] = def.default;
  const want = spec.args ?? [];
  const required = want.filter((w) => !w.endsWith('?') && !w.endsWith('...')).length;
  const variadic = want.some((w) => w.endsWith('...'));
  if (args.length < required) throw new UsageError(`missing argument ${want[args.length]}`);
  if (!variadic && args.length > want.length) throw new UsageError(`unexpected argument '${args[want.length]}'`);
  return { flags, args };
}

export function helpText(spec: CommandSpec): string {
  const lines = [`usage: ooo ${spec.path.join(' ')}${spec.flags && Object.keys(spec.flags).length ? ' [options]' : ''}${(spec.args ?? []).map((a) => ' ' + a).join('')}`, '', spec.summary];
  const defs = Object.entries(spec.flags ?? {});
  if (defs.length) {
    lines.push('', 'options:');
    for (const [name, def] of defs) {
      const left = `  ${def.short ? `-${def.short}, ` : ''}--${name}${def.type === 'boolean' ? '' : ' ' + (def.value ?? def.type.toUpperCase())}`;
      lines.push(`${left.padEnd(34)} ${def.help}${def.default !== undefined ? ` (default: ${def.default})` : ''}`);
    }
  }
  return lines.join('\n');
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags[name];
  return v === undefined ? undefined : String(v);
}
