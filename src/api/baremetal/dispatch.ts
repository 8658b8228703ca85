/**
 * The API's side of the conductor: validates a requested operation against the state machine,
 * claims the node for a conductor and queues the work, all in one transaction.
 */
import type { Db } from '../../store/db.js';
import { addHistory, nodeById, updateNode } from '../../store/nodes.js';
import type { NodeRecord } from '../../model/node.js';
import { ConductorRing } from '../../conductor/ring.js';
import { awaitTask, queueTask, TASKS_CHANNEL, TaskAction, TaskTimeout } from '../../conductor/tasks.js';
import { next, ProvisionEvent, S, TARGET_OF } from '../../conductor/states.js';
import { ApiError, badRequest } from '../http.js';
import { nodeLocked } from './common.js';
import { now } from '../../util/ids.js';

export class Dispatcher {
  constructor(readonly db: Db, readonly ring: ConductorRing) {}

  private async conductorFor(node: NodeRecord): Promise<string> {
    const host = await this.ring.pick(node);
    if (!host) {
      throw new ApiError(503, `No valid host was found. Reason: No conductor service registered which supports driver ${node.driver} for conductor group "${node.conductor_group}".`);
    }
    return host;
  }

  /**
   * Moves the node to the state `event` leads to, reserves it for a conductor and queues
   * `action` — or, with no action, only records the transition (stable to stable).
   */
  async provision(node: NodeRecord, event: ProvisionEvent, action: TaskAction | undefined, args: Record<string, unknown>, userId: string | undefined, verb: string): Promise<void> {
    const to = next(node.provision_state, event);
    if (!to) throw badRequest(`The requested action "${verb}" can not be performed on node "${node.uuid}" while it is in state "${node.provision_state}".`);
    const host = action ? await this.conductorFor(node) : undefined;
    await this.db.tx(async (t) => {
      const fresh = await nodeById(t, node.id);
      if (!fresh) throw new ApiError(404, `Node ${node.uuid} could not be found.`);
      if (fresh.reservation) throw nodeLocked(node.uuid, fresh.reservation);
      if (fresh.provision_state !== node.provision_state) throw new ApiError(409, `Node ${node.uuid} changed state to "${fresh.provision_state}" meanwhile; retry.`);
      const target = event === 'abort' ? null : (TARGET_OF[to] ?? null);
      const changes: Partial<NodeRecord> = { provision_state: to, target_provision_state: target, provision_updated_at: now(), last_error: null };
      if (event === 'abort') changes.last_error = `Operation aborted by the operator in state '${node.provision_state}'.`;
      if (host) changes.reservation = host;
      const ok = await updateNode(t, node.id, changes, { reservation: null });
      if (!ok) throw nodeLocked(node.uuid, 'another host');
      await addHistory(t, node.id, { event: `${node.provision_state} -> ${to} (${verb} requested)`, event_type: 'provisioning', severity: event === 'abort' ? 'WARNING' : 'INFO', user_id: userId ?? null });
      if (host && action) await queueTask(t, node.id, host, action, args, true);
    });
    if (host) await this.db.notify(TASKS_CHANNEL);
  }

  async power(node: NodeRecord, target: string, timeout: number | undefined, userId: string | undefined): Promise<void> {
    const host = await this.conductorFor(node);
    await this.db.tx(async (t) => {
      const fresh = await nodeById(t, node.id);
      if (!fresh) throw new ApiError(404, `Node ${node.uuid} could not be found.`);
      if (fresh.reservation) throw nodeLocked(node.uuid, fresh.reservation);
      if (fresh.target_power_state) throw new ApiError(409, `Node ${node.uuid} is already changing its power state to '${fresh.target_power_state}'.`);
      const shown = target === 'rebooting' || target === 'soft rebooting' ? 'power on' : target === 'soft power off' ? 'power off' : target;
      const ok = await updateNode(t, node.id, { reservation: host, target_power_state: shown, last_error: null }, { reservation: null });
      if (!ok) throw nodeLocked(node.uuid, 'another host');
      await addHistory(t, node.id, { event: `power ${target} requested`, event_type: 'power', user_id: userId ?? null });
      await queueTask(t, node.id, host, 'power', { target, timeout }, true);
    });
    await this.db.notify(TASKS_CHANNEL);
  }

  /** Reserves the node for its conductor and queues an action without waiting for it. */
  async queue(node: NodeRecord, action: TaskAction, args: Record<string, unknown>): Promise<void> {
    const host = await this.conductorFor(node);
    await this.db.tx(async (t) => {
      if (!(await updateNode(t, node.id, { reservation: host }, { reservation: null }))) throw nodeLocked(node.uuid, 'another host');
      await queueTask(t, node.id, host, action, args, true);
    });
    await this.db.notify(TASKS_CHANNEL);
  }

  /** Runs an action on the node's conductor and waits for its answer (synchronous calls). */
  async call(node: NodeRecord, action: TaskAction, args: Record<string, unknown>, exclusive: boolean, timeoutMs = 60_000): Promise<unknown> {
    const host = await this.conductorFor(node);
    const id = await this.db.tx(async (t) => {
      if (exclusive) {
        const fresh = await nodeById(t, node.id);
        if (fresh?.reservation) throw nodeLocked(node.uuid, fresh.reservation);
        if (!(await updateNode(t, node.id, { reservation: host }, { reservation: null }))) throw nodeLocked(node.uuid, 'another host');
      }
      return queueTask(t, node.id, host, action, { ...args, reply: true }, exclusive);
    });
    await this.db.notify(TASKS_CHANNEL);
    try {
      return await awaitTask(this.db, id, timeoutMs);
    } catch (e) {
      if (e instanceof TaskTimeout) throw new ApiError(503, `The conductor ${host} did not answer within ${Math.round(timeoutMs / 1000)} s.`);
      throw badRequest((e as Error).message);
    }
  }

  /** Stable-to-stable moves the API does itself (e.g. available -> manageable). */
  static readonly DIRECT: ReadonlySet<string> = new Set([`${S.AVAILABLE}:manage`, `${S.CLEANFAIL}:manage`, `${S.INSPECTFAIL}:manage`, `${S.ADOPTFAIL}:manage`]);
}
