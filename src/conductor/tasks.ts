/**
 * The work queue between the API and the conductors: rows in node_tasks. The API claims the
 * node for a conductor (sets its reservation) and queues a task in the same transaction; the
 * conductor runs it and releases the node. Non-exclusive tasks (validate, read the boot device)
 * do not take the node's lock. Callers that need the answer wait for the row to finish.
 */
import type { Db } from '../store/db.js';
import { now } from '../util/ids.js';

export const TASKS_CHANNEL = 'ooo_tasks';
export const DONE_CHANNEL = 'ooo_tasks_done';

export type TaskAction =
  | 'verify' | 'clean' | 'inspect' | 'deploy' | 'undeploy' | 'abort' | 'adopt' | 'rescue' | 'unrescue'
  | 'power' | 'set_boot_device' | 'get_boot_device' | 'validate' | 'console' | 'heartbeat';

export interface TaskRow { id: number; node_id: number; conductor: string; action: TaskAction; args: string; exclusive: number; status: string; result: string | null; created_at: string; started_at: string | null; finished_at: string | null }

export async function queueTask(db: Db, nodeId: number, conductor: string, action: TaskAction, args: Record<string, unknown>, exclusive: boolean): Promise<number> {
  await db.run('INSERT INTO node_tasks (node_id, conductor, action, args, exclusive, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [nodeId, conductor, action, JSON.stringify(args), exclusive ? 1 : 0, 'queued', now()]);
  const row = await db.get<{ id: number }>('SELECT MAX(id) AS id FROM node_tasks WHERE node_id = ? AND conductor = ?', [nodeId, conductor]);
  return Number(row!.id);
}

export class TaskTimeout extends Error {}

/** Waits until a task finished; returns its result or throws its error message. */
export async function awaitTask(db: Db, id: number, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  let wake: (() => void) | undefined;
  const onDone = () => wake?.();
  const stop = await db.listen(DONE_CHANNEL, onDone);
  try {
  let delay = 5;
  for (;;) {
    const row = await db.get<TaskRow>('SELECT * FROM node_tasks WHERE id = ?', [id]);
    if (!row) throw new Error('the task disappeared (its conductor was replaced); retry');
    if (row.status === 'done' || row.status === 'failed') {
      await db.run('DELETE FROM node_tasks WHERE id = ?', [id]);
      const result = row.result ? JSON.parse(row.result) : null;
      if (row.status === 'failed') throw new Error(String((result as { error?: string })?.error ?? 'failed'));
      return result;
    }
    if (Date.now() > deadline) throw new TaskTimeout('the conductor did not answer in time');
    await new Promise<void>((r) => { wake = r; setTimeout(r, delay); });
    delay = Math.min(delay * 2, 200);
  }
  } finally { stop(); }
}
