/**
 * Which conductor looks after which node: rendezvous hashing over the live conductors of the
 * node's conductor group that support its driver. Every process computes the same answer from
 * the conductors table, so no coordination is needed beyond the store.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../store/db.js';

export interface ConductorRow { id: number; hostname: string; conductor_group: string; drivers: string; online: number; alive_at: string; created_at: string; updated_at: string | null }

export interface LiveConductor { hostname: string; group: string; drivers: Set<string> }

/** Seconds without a heartbeat after which a conductor counts as dead. */
export const DEFAULT_DEAD_AFTER_S = 20;

export class ConductorRing {
  private cache?: { at: number; list: LiveConductor[] };
  constructor(private readonly db: Db, private readonly deadAfterS = DEFAULT_DEAD_AFTER_S, private readonly cacheMs = 1000) {}

  invalidate(): void { this.cache = undefined; }

  async live(): Promise<LiveConductor[]> {
    if (this.cache && Date.now() - this.cache.at < this.cacheMs) return this.cache.list;
    const since = new Date(Date.now() - this.deadAfterS * 1000).toISOString();
    const rows = await this.db.all<ConductorRow>('SELECT * FROM conductors WHERE online = 1 AND alive_at > ? ORDER BY hostname', [since]);
    const list = rows.map((r) => ({ hostname: r.hostname, group: r.conductor_group, drivers: new Set(JSON.parse(r.drivers) as string[]) }));
    this.cache = { at: Date.now(), list };
    return list;
  }

  /** The conductor for a node, or undefined when none can serve it. */
  async pick(node: { uuid: string; driver: string; conductor_group: string }): Promise<string | undefined> {
    return pickFrom(await this.live(), node);
  }
}

export function pickFrom(live: LiveConductor[], node: { uuid: string; driver: string; conductor_group: string }): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const c of live) {
    if (c.group !== (node.conductor_group ?? '') || !c.drivers.has(node.driver)) continue;
    const score = createHash('sha1').update(`${c.hostname}\0${node.uuid}`).digest().readBigUInt64BE(0);
    if (score > bestScore) { bestScore = score; best = c.hostname; }
  }
  return best;
}
