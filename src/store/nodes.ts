/**
 * Node queries shared by the API and the conductor.
 */
import type { Db } from './db.js';
import { decodeNode, encodeField, NodeRecord } from '../model/node.js';
import { canonicalUuid, isUuid, now, uuid } from '../util/ids.js';

const SELECT = 'SELECT n.*, a.uuid AS allocation_uuid, c.uuid AS chassis_uuid FROM nodes n LEFT JOIN allocations a ON a.id = n.allocation_id LEFT JOIN chassis c ON c.id = n.chassis_id';

/** A node by UUID or name. */
export async function findNode(db: Db, ident: string): Promise<NodeRecord | undefined> {
  const row = isUuid(ident)
    ? await db.get(`${SELECT} WHERE n.uuid = ?`, [canonicalUuid(ident)])
    : await db.get(`${SELECT} WHERE n.name = ?`, [ident]);
  return row ? decodeNode(row) : undefined;
}

export async function nodeById(db: Db, id: number): Promise<NodeRecord | undefined> {
  const row = await db.get(`${SELECT} WHERE n.id = ?`, [id]);
  return row ? decodeNode(row) : undefined;
}

export interface NodeQuery {
  /** Columns to read (all when absent); the joined allocation/chassis UUIDs only when named. */
  columns?: string[];
  where: string[];
  params: unknown[];
  sortKey: string;
  sortDir: 'asc' | 'desc';
  limit: number;
  /** Rows after this node (by the sort key, then id). */
  marker?: NodeRecord;
}

export async function listNodes(db: Db, q: NodeQuery): Promise<NodeRecord[]> {
  const where = [...q.where];
  const params = [...q.params];
  const col = `n.${q.sortKey}`;
  if (q.marker) {
    const mv = (q.marker as unknown as Record<string, unknown>)[q.sortKey];
    const cmp = q.sortDir === 'asc' ? '>' : '<';
    if (mv === null || mv === undefined) {
      where.push(`(${col} IS NULL AND n.id ${cmp} ?)`);
      params.push(q.marker.id);
    } else {
      where.push(`(${col} ${cmp} ? OR (${col} = ? AND n.id ${cmp} ?))`);
      params.push(mv, mv, q.marker.id);
    }
  }
  let select = SELECT;
  if (q.columns) {
    const cols = new Set(['id', 'uuid', q.sortKey, ...q.columns]);
    const joins: string[] = [];
    const list = [...cols].filter((c) => c !== 'allocation_uuid' && c !== 'chassis_uuid').map((c) => `n.${c}`);
    if (cols.has('allocation_uuid')) { list.push('a.uuid AS allocation_uuid'); joins.push('LEFT JOIN allocations a ON a.id = n.allocation_id'); }
    if (cols.has('chassis_uuid')) { list.push('c.uuid AS chassis_uuid'); joins.push('LEFT JOIN chassis c ON c.id = n.chassis_id'); }
    select = `SELECT ${list.join(', ')} FROM nodes n ${joins.join(' ')}`;
  }
  const sql = `${select}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY ${col} ${q.sortDir.toUpperCase()}, n.id ${q.sortDir.toUpperCase()} LIMIT ?`;
  const rows = await db.all(sql, [...params, q.limit]);
  return rows.map(decodeNode);
}

export async function insertNode(db: Db, fields: Partial<NodeRecord> & { driver: string; provision_state: string }): Promise<NodeRecord> {
  const rec: Record<string, unknown> = { uuid: uuid(), created_at: now(), ...fields };
  const keys = Object.keys(rec).filter((k) => rec[k] !== undefined && k !== 'allocation_uuid' && k !== 'chassis_uuid' && k !== 'id');
  await db.run(`INSERT INTO nodes (${keys.join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`, keys.map((k) => encodeField(k, rec[k])));
  return (await findNode(db, rec.uuid as string))!;
}

/**
 * Updates a node; with `onlyIf`, only when the stored row still matches (e.g. the reservation
 * this caller holds). Returns whether a row changed.
 */
export async function updateNode(db: Db, id: number, changes: Partial<NodeRecord>, onlyIf: Record<string, unknown> = {}): Promise<boolean> {
  const keys = Object.keys(changes).filter((k) => k !== 'id' && k !== 'allocation_uuid' && k !== 'chassis_uuid');
  if (!keys.length && !Object.keys(onlyIf).length) return true;
  const sets = [...keys.map((k) => `${k} = ?`), 'updated_at = ?'];
  const params: unknown[] = [...keys.map((k) => encodeField(k, (changes as Record<string, unknown>)[k])), now()];
  const where = ['id = ?'];
  params.push(id);
  for (const [k, v] of Object.entries(onlyIf)) {
    if (v === null) where.push(`${k} IS NULL`);
    else { where.push(`${k} = ?`); params.push(v); }
  }
  const r = await db.run(`UPDATE nodes SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`, params);
  return r.changes > 0;
}

export type HistorySeverity = 'INFO' | 'WARNING' | 'ERROR';

/** Adds an entry to the node's history. */
export async function addHistory(db: Db, nodeId: number, e: { event: string; event_type: string; severity?: HistorySeverity; conductor?: string | null; user_id?: string | null; duration_ms?: number | null }): Promise<void> {
  await db.run(
    'INSERT INTO node_history (uuid, node_id, conductor, event_type, severity, event, user_id, duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [uuid(), nodeId, e.conductor ?? null, e.event_type, e.severity ?? 'INFO', e.event, e.user_id ?? null, e.duration_ms ?? null, now()],
  );
}
