/**
 * JSON-Patch (RFC 6902) as OpenStack APIs apply it: add, replace, remove, move, copy and test,
 * on a plain object, one operation at a time, with errors that name the failing path.
 */
export class PatchError extends Error {}

export interface PatchOp { op: string; path: string; value?: unknown; from?: string }

function parsePath(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new PatchError(`Invalid patch path '${String(path)}': it must start with '/'.`);
  return path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function container(doc: unknown, parts: string[], path: string): { parent: Record<string, unknown> | unknown[]; key: string } {
  let cur: unknown = doc;
  for (const p of parts.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') throw new PatchError(`Invalid patch path '${path}': '${p}' is not an object.`);
    const next = Array.isArray(cur) ? cur[Number(p)] : (cur as Record<string, unknown>)[p];
    if (next === undefined) throw new PatchError(`Invalid patch path '${path}': '${p}' does not exist.`);
    cur = next;
  }
  if (cur === null || typeof cur !== 'object') throw new PatchError(`Invalid patch path '${path}'.`);
  return { parent: cur as Record<string, unknown> | unknown[], key: parts[parts.length - 1]! };
}

function getAt(doc: unknown, path: string): unknown {
  const { parent, key } = container(doc, parsePath(path), path);
  const v = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (v === undefined) throw new PatchError(`Can't remove non-existent object '${path.split('/').pop()}'`);
  return v;
}

function removeAt(doc: unknown, path: string): void {
  const { parent, key } = container(doc, parsePath(path), path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw new PatchError(`Can't remove non-existent object '${key}'`);
    parent.splice(i, 1);
  } else {
    if (!(key in parent)) throw new PatchError(`Can't remove non-existent object '${key}'`);
    delete parent[key];
  }
}

function addAt(doc: unknown, path: string, value: unknown, replace: boolean): void {
  const { parent, key } = container(doc, parsePath(path), path);
  if (Array.isArray(parent)) {
    const i = key === '-' ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new PatchError(`Invalid patch path '${path}': index out of range.`);
    if (replace) {
      if (i >= parent.length) throw new PatchError(`Can't replace non-existent object '${key}'`);
      parent[i] = value;
    } else parent.splice(i, 0, value);
  } else {
    if (replace && !(key in parent)) throw new PatchError(`Can't replace non-existent object '${key}'`);
    parent[key] = value;
  }
}

/** Applies the patch to a deep copy of doc and returns it; doc itself is untouched. */
export function applyPatch<T>(doc: T, patch: unknown): T {
  if (!Array.isArray(patch)) throw new PatchError('The patch must be a JSON list of operations.');
  const out = structuredClone(doc);
  for (const raw of patch) {
    if (!raw || typeof raw !== 'object') throw new PatchError('Each patch operation must be an object.');
    const op = raw as PatchOp;
    switch (op.op) {
      case 'add':
      case 'replace':
        if (!('value' in op)) throw new PatchError(`'${op.op}' operation on '${op.path}' needs a 'value'.`);
        addAt(out, op.path, structuredClone(op.value), op.op === 'replace');
        break;
      case 'remove':
        removeAt(out, op.path);
        break;
      case 'move': {
        const v = getAt(out, op.from ?? '');
        removeAt(out, op.from ?? '');
        addAt(out, op.path, v, false);
        break;
      }
      case 'copy':
        addAt(out, op.path, structuredClone(getAt(out, op.from ?? '')), false);
        break;
      case 'test':
        if (JSON.stringify(getAt(out, op.path)) !== JSON.stringify(op.value)) throw new PatchError(`Test failed at '${op.path}'.`);
        break;
      default:
        throw new PatchError(`Invalid patch operation '${String(op.op)}': use add, replace, remove, move, copy or test.`);
    }
  }
  return out;
}
