/**
 * Elements: directories that describe one piece of an image. This module finds them on a search
 * path, reads what they declare (dependencies, packages, environment files, phase hooks, static
 * files) and resolves a build's element list into a deterministic order.
 *
 * The format is documented in docs/elements.md.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, lstatSync, readlinkSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** Phases in the order they run. `host` phases run on the build host with TARGET_ROOT set. */
export const PHASES = [
  { name: 'root', where: 'host' },
  { name: 'extra-data', where: 'host' },
  { name: 'pre-install', where: 'chroot' },
  { name: 'install', where: 'chroot' },
  { name: 'post-install', where: 'chroot' },
  { name: 'finalise', where: 'host' },
  { name: 'cleanup', where: 'host' },
] as const;
export type PhaseName = (typeof PHASES)[number]['name'];

export interface PackageInstall {
  name: string;
  /** Conditions `VAR=value` / `VAR!=value`, all of which must hold (checked against the build environment). */
  when: string[];
  /** Remove the package again in the cleanup phase (build-only dependency). */
  uninstall: boolean;
}

export interface Element {
  name: string;
  dir: string;
  deps: string[];
  packages: PackageInstall[];
  /** environment.d files, sorted. */
  envFiles: string[];
  /** phase -> executable hook file names, sorted lexically. */
  hooks: Partial<Record<PhaseName, string[]>>;
  hasStatic: boolean;
  /** A base element creates the image root (`busybox`, `debian`); exactly one per build. */
  isBase: boolean;
}

export class ElementError extends Error {}

/** The project's own elements/ directory (two levels above dist/src/images/builder or src/images/builder). */
export function projectElementsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'elements'))) return join(dir, 'elements');
    dir = dirname(dir);
  }
  throw new ElementError('cannot find the project elements/ directory');
}

/** Search path: explicit directories first, then OOO_ELEMENTS_PATH (colon separated), then the project's elements/. */
export function elementSearchPath(extra: string[] = [], env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.OOO_ELEMENTS_PATH ?? '').split(':').filter(Boolean);
  const all = [...extra.flatMap((e) => e.split(':')).filter(Boolean), ...fromEnv, projectElementsDir()].map((p) => resolve(p));
  return [...new Set(all)];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HOOK_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function listLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
}

function readPackages(dir: string): PackageInstall[] {
  const out: PackageInstall[] = [];
  const yamlFile = ['package-installs.yaml', 'package-installs.yml'].map((f) => join(dir, f)).find(existsSync);
  if (yamlFile) {
    let doc: unknown;
    try { doc = parseYaml(readFileSync(yamlFile, 'utf8')); } catch (e) {
      throw new ElementError(`${yamlFile}: invalid YAML: ${(e as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ElementError(`${yamlFile}: expected a mapping of package name to options`);
      for (const [name, opts] of Object.entries(doc as Record<string, unknown>)) {
        const o = (opts ?? {}) as Record<string, unknown>;
        if (typeof o !== 'object' || Array.isArray(o)) throw new ElementError(`${yamlFile}: options of '${name}' must be a mapping`);
        for (const k of Object.keys(o)) if (!['when', 'uninstall'].includes(k)) throw new ElementError(`${yamlFile}: '${name}': unknown option '${k}' (known: when, uninstall)`);
        const when = o.when === undefined ? [] : Array.isArray(o.when) ? o.when.map(String) : [String(o.when)];
        for (const w of when) if (!/^[A-Za-z_][A-Za-z0-9_]*\s*!?=/.test(w)) throw new ElementError(`${yamlFile}: '${name}': condition '${w}' must look like VAR=value or VAR!=value`);
        out.push({ name, when, uninstall: o.uninstall === true });
      }
    }
  }
  const plain = join(dir, 'packages');
  if (existsSync(plain)) for (const l of listLines(plain)) for (const name of l.split(/\s+/)) out.push({ name, when: [], uninstall: false });
  return out;
}

function isExecutableFile(p: string): boolean {
  const st = statSync(p);
  return st.isFile() && (st.mode & 0o111) !== 0;
}

export function readElement(name: string, dir: string): Element {
  const deps = existsSync(join(dir, 'element-deps')) ? listLines(join(dir, 'element-deps')) : [];
  for (const d of deps) if (!NAME_RE.test(d)) throw new ElementError(`element '${name}': element-deps names an invalid element '${d}'`);
  const envDir = join(dir, 'environment.d');
  const envFiles = existsSync(envDir) ? readdirSync(envDir).filter((f) => f.endsWith('.bash') || f.endsWith('.sh')).sort().map((f) => join(envDir, f)) : [];
  const hooks: Element['hooks'] = {};
  for (const p of PHASES) {
    const hd = join(dir, `${p.name}.d`);
    if (!existsSync(hd)) continue;
    const names = readdirSync(hd).filter((f) => HOOK_RE.test(f)).sort();
    const bad = names.filter((f) => !isExecutableFile(join(hd, f)));
    if (bad.length) throw new ElementError(`element '${name}': hook ${p.name}.d/${bad[0]} is not an executable file (chmod +x it)`);
    if (names.length) hooks[p.name] = names;
  }
  return {
    name, dir, deps, packages: readPackages(dir), envFiles, hooks,
    hasStatic: existsSync(join(dir, 'static')),
    isBase: existsSync(join(dir, 'base')),
  };
}

/** Find one element on the search path (first directory wins). */
export function findElement(name: string, searchPath: string[]): string | undefined {
  for (const d of searchPath) {
    const p = join(d, name);
    if (existsSync(p) && statSync(p).isDirectory()) return p;
  }
  return undefined;
}

/**
 * Resolve requested elements plus their dependencies into run order: dependencies before the
 * elements that need them, otherwise in the order asked for, then alphabetical for the deps of
 * one element. Throws naming the element that wants a missing one, or printing a cycle.
 */
export function resolveElements(requested: string[], searchPath: string[]): Element[] {
  if (requested.length === 0) throw new ElementError('no elements given');
  const loaded = new Map<string, Element>();
  const load = (name: string, wantedBy: string | undefined): Element => {
    const have = loaded.get(name);
    if (have) return have;
    if (!NAME_RE.test(name)) throw new ElementError(`invalid element name '${name}'`);
    const dir = findElement(name, searchPath);
    if (!dir) {
      const who = wantedBy ? `element '${wantedBy}' depends on '${name}', which` : `element '${name}'`;
      throw new ElementError(`${who} was not found in the element search path: ${searchPath.join(':')}`);
    }
    const el = readElement(name, dir);
    loaded.set(name, el);
    return el;
  };
  const order: Element[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string, wantedBy: string | undefined): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(name)), name];
      throw new ElementError(`element dependency cycle: ${cycle.join(' -> ')}`);
    }
    const el = load(name, wantedBy);
    state.set(name, 'visiting');
    stack.push(name);
    for (const d of [...new Set(el.deps)].sort()) visit(d, name);
    stack.pop();
    state.set(name, 'done');
    order.push(el);
  };
  for (const r of requested) visit(r, undefined);
  const bases = order.filter((e) => e.isBase);
  if (bases.length === 0) throw new ElementError(`no base element among ${order.map((e) => e.name).join(', ')}: add one (busybox or debian)`);
  if (bases.length > 1) throw new ElementError(`more than one base element: ${bases.map((e) => e.name).join(' and ')} (pick one)`);
  return order;
}

/** sha256 over an element's whole tree (names, modes, symlink targets, contents), in sorted order. */
export function hashTree(dir: string, h = createHash('sha256'), rel = ''): ReturnType<typeof createHash> {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(p);
    if (st.isSymbolicLink()) h.update(`L ${r} ${readlinkSync(p)}\0`);
    else if (st.isDirectory()) { h.update(`D ${r} ${st.mode & 0o7777}\0`); hashTree(p, h, r); }
    else if (st.isFile()) { h.update(`F ${r} ${st.mode & 0o7777} ${st.size}\0`); h.update(readFileSync(p)); }
  }
  return h;
}
