/**
 * The conductor: runs the work the API queued (node_tasks), moves nodes through the provision
 * state machine by calling their hardware interfaces, and keeps the periodic duties: its own
 * heartbeat, power-state sync, wait-state timeouts and taking over the nodes of dead conductors.
 * Everything it knows is in the store, so any number of conductors can share one database.
 */
import { hostname as osHostname } from 'node:os';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Db } from '../store/db.js';
import { addHistory, HistorySeverity, nodeById, updateNode } from '../store/nodes.js';
import { NodeRecord } from '../model/node.js';
import { logger, Logger } from '../util/log.js';
import { now, uuid as uuidv4 } from '../util/ids.js';
import { ACTIVE_WORK, failStateOf, next, ProvisionEvent, S, TARGET_OF, WAIT_STATES } from './states.js';
import { ConductorRing, DEFAULT_DEAD_AFTER_S, pickFrom } from './ring.js';
import { DONE_CHANNEL, TASKS_CHANNEL, TaskRow } from './tasks.js';
import { resolveDriver, ResolvedDriver } from '../drivers/compose.js';
import { BootDevice, CleanStep, DriverError, DriverNode, DriverPort, StepResult, Task } from '../drivers/interfaces.js';
import { hardwareTypes } from '../drivers/registry.js';
import { closeIpmiSessions } from '../protocols/ipmi/client.js';
import { closeRedfishClients } from '../drivers/redfish.js';

export interface ConductorOptions {
  hostname?: string;
  group?: string;
  heartbeatS?: number;
  deadAfterS?: number;
  powerSyncS?: number;
  /** Seconds a node may stay in a wait state before it fails (deploy, clean, inspect, rescue). */
  waitTimeoutS?: number;
  workers?: number;
  /** Run automated cleaning on provide/undeploy when the node does not say otherwise. */
  automatedClean?: boolean;
  /** How often to look for queued work when no notification arrives (ms). */
  pollMs?: number;
}

class StepFailure extends Error {}

export class Conductor {
  readonly hostname: string;
  readonly group: string;
  private readonly log: Logger;
  private readonly ring: ConductorRing;
  private readonly opts: Required<ConductorOptions>;
  private timers: NodeJS.Timeout[] = [];
  private running = new Map<number, Promise<void>>();
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;
  private unlisten?: () => void;
  private powerFailures = new Map<number, number>();
  private readonly aborts = new Map<number, AbortController>();

  constructor(private readonly db: Db, opts: ConductorOptions = {}) {
    this.hostname = opts.hostname ?? osHostname();
    this.group = opts.group ?? '';
    this.opts = {
      hostname: this.hostname, group: this.group, heartbeatS: opts.heartbeatS ?? Math.max(1, Math.min(5, (opts.deadAfterS ?? DEFAULT_DEAD_AFTER_S) / 4)), deadAfterS: opts.deadAfterS ?? DEFAULT_DEAD_AFTER_S,
      powerSyncS: opts.powerSyncS ?? 60, waitTimeoutS: opts.waitTimeoutS ?? 1800, workers: opts.workers ?? 64,
      automatedClean: opts.automatedClean ?? true, pollMs: opts.pollMs ?? 500,
    };
    this.log = logger('conductor').child({ conductor: this.hostname });
    this.ring = new ConductorRing(db, this.opts.deadAfterS, 500);
  }

  async start(): Promise<void> {
    const drivers = JSON.stringify(hardwareTypes().map((t) => t.name));
    const t = now();
    const existing = await this.db.get('SELECT id FROM conductors WHERE hostname = ?', [this.hostname]);
    if (existing) await this.db.run('UPDATE conductors SET conductor_group = ?, drivers = ?, online = 1, alive_at = ?, updated_at = ? WHERE hostname = ?', [this.group, drivers, t, t, this.hostname]);
    else await this.db.run('INSERT INTO conductors (hostname, conductor_group, drivers, online, alive_at, created_at) VALUES (?, ?, ?, 1, ?, ?)', [this.hostname, this.group, drivers, t, t]);
    // Work this conductor had started before a restart cannot be resumed: fail it cleanly.
    await this.recoverOwn();
    this.unlisten = await this.db.listen(TASKS_CHANNEL, () => this.pump());
    const every = (s: number, fn: () => Promise<unknown>) => {
      let busy = false;
      const timer = setInterval(() => {
        if (busy || this.stopping) return;
        busy = true;
        fn().catch((e) => this.log.error('periodic task failed', { error: String(e?.stack ?? e) })).finally(() => { busy = false; });
      }, s * 1000);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.opts.heartbeatS, () => this.heartbeat());
    every(this.opts.pollMs / 1000, async () => this.pump());
    every(this.opts.powerSyncS, () => this.syncPowerStates());
    every(Math.min(10, this.opts.waitTimeoutS / 2), () => this.checkWaitTimeouts());
    every(this.opts.heartbeatS, () => this.takeOverDead());
    this.log.info('conductor started', { group: this.group });
    this.pump();
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.unlisten?.();
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
    for (const a of this.aborts.values()) a.abort(new Error('conductor shutting down'));
    await this.db.run('UPDATE conductors SET online = 0, updated_at = ? WHERE hostname = ?', [now(), this.hostname]).catch(() => undefined);
    // BMC sessions held open for reuse are closed politely (BMCs allow few sessions).
    await Promise.allSettled([closeIpmiSessions(), closeRedfishClients()]);
    this.log.info('conductor stopped');
  }

  private async heartbeat(): Promise<void> {
    await this.db.run('UPDATE conductors SET alive_at = ?, online = 1 WHERE hostname = ?', [now(), this.hostname]);
  }

  // ---------------------------------------------------------------- queue

  private pump(): void {
    if (this.stopping) return;
    if (this.pumping) { this.pumpAgain = true; return; }
    this.pumping = true;
    void (async () => {
      try {
        do {
          this.pumpAgain = false;
          const free = this.opts.workers - this.running.size;
          if (free <= 0) break;
          const rows = await this.db.all<TaskRow>("SELECT * FROM node_tasks WHERE conductor = ? AND status = 'queued' ORDER BY id LIMIT ?", [this.hostname, free]);
          for (const row of rows) {
            const claimed = await this.db.run("UPDATE node_tasks SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'", [now(), row.id]);
            if (!claimed.changes) continue;
            const p = this.runTask(row).finally(() => { this.running.delete(row.id); this.pump(); });
            this.running.set(row.id, p);
          }
          if (rows.length === free) this.pumpAgain = true;
        } while (this.pumpAgain && !this.stopping);
      } catch (e) {
        this.log.error('could not read the task queue', { error: String(e) });
      } finally {
        this.pumping = false;
      }
    })();
  }

  private async runTask(row: TaskRow): Promise<void> {
    const args = JSON.parse(row.args) as Record<string, unknown>;
    let result: unknown = null;
    let failed = false;
    const node = await nodeById(this.db, row.node_id);
    try {
      if (!node) throw new Error('node no longer exists');
      if (row.exclusive && node.reservation !== this.hostname) throw new Error(`node ${node.uuid} is not reserved by this conductor (reservation: ${node.reservation ?? 'none'})`);
      result = await this.execute(row.action, node, args);
    } catch (e) {
      failed = true;
      result = { error: (e as Error).message };
      if (!(e instanceof DriverError) && !(e instanceof StepFailure)) this.log.error('task failed', { action: row.action, node: node?.uuid, error: String((e as Error)?.stack ?? e) });
    } finally {
      if (row.exclusive && node) await updateNode(this.db, node.id, { reservation: null }, { reservation: this.hostname }).catch(() => undefined);
    }
    if (args.reply) {
      await this.db.run('UPDATE node_tasks SET status = ?, result = ?, finished_at = ? WHERE id = ?', [failed ? 'failed' : 'done', JSON.stringify(result ?? null), now(), row.id]);
      await this.db.notify(DONE_CHANNEL);
    } else {
      await this.db.run('DELETE FROM node_tasks WHERE id = ?', [row.id]);
    }
  }

  // ---------------------------------------------------------------- task context

  private async taskFor(node: NodeRecord): Promise<{ task: Task & { node: DriverNode }; driver: ResolvedDriver; refresh: () => Promise<NodeRecord> }> {
    const driver = resolveDriver(node);
    const ports = await this.db.all<{ uuid: string; address: string; pxe_enabled: number; extra: string }>('SELECT uuid, address, pxe_enabled, extra FROM ports WHERE node_id = ? ORDER BY id', [node.id]);
    const abort = new AbortController();
    this.aborts.set(node.id, abort);
    const dnode: DriverNode = {
      uuid: node.uuid, name: node.name, driver: node.driver, driver_info: node.driver_info, driver_internal_info: node.driver_internal_info,
      instance_info: node.instance_info, properties: node.properties, extra: node.extra, provision_state: node.provision_state,
      power_state: node.power_state as DriverNode['power_state'], boot_mode: node.boot_mode as DriverNode['boot_mode'], resource_class: node.resource_class, traits: node.traits,
    };
    const log = this.log.child({ node: node.uuid });
    const db = this.db;
    const self = this;
    const apiUrl = (await this.db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'baremetal_url'"))?.value;
    const machineBase = (apiUrl ?? '').replace(/\/baremetal$/, '');
    /** An image of the seed's image service by id or name, with its data; `what` names the setting in errors. */
    const activeImage = async (ident: string, what: string) => {
      const rows = await db.all<{ id: string; status: string; disk_format: string | null; sha256: string | null; size: number | null }>(
        "SELECT id, status, disk_format, sha256, size FROM images WHERE id = ? OR (name = ? AND status = 'active')", [ident, ident]);
      if (rows.length > 1) throw new DriverError(`${what}: ${rows.length} images are named '${ident}'; use an image id`, 'invalid_parameter');
      const img = rows[0];
      if (!img) throw new DriverError(`${what} '${ident}' is neither a URL nor an image of the seed's image service`, 'invalid_parameter');
      if (img.status !== 'active' || !img.sha256) throw new DriverError(`${what}: image ${img.id} is ${img.status}, not active: upload its data first`, 'invalid_parameter');
      return img;
    };
    const task: Task & { node: DriverNode } = {
      node: dnode,
      driver,
      services: {
        apiUrl,
        async resolveImage(ident: string) {
          const img = await activeImage(ident, 'instance_info.image_source');
          const url = `${machineBase}/images/${img.id}/raw`;
          if ((img.disk_format ?? 'raw') === 'raw') return { url, sha256: img.sha256!, size: Number(img.size) };
          // Other formats are converted to raw by the image service once; ask it for the result.
          const local = (await db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'api_local_url'"))?.value ?? machineBase;
          const r = await fetch(`${local}/images/${img.id}/raw`, { method: 'HEAD' });
          const sha = r.headers.get('x-image-sha256');
          const len = Number(r.headers.get('content-length'));
          if (!r.ok || !sha || !len) throw new DriverError(`the image service could not provide image ${img.id} as raw (HTTP ${r.status})`, 'failed');
          return { url, sha256: sha, size: len };
        },
        async imageFileUrl(ident: string, what: string) {
          return `${machineBase}/images/${(await activeImage(ident, what)).id}`;
        },
        async putBlob(name: string, data: Buffer) {
          const sha256 = createHash('sha256').update(data).digest('hex');
          const packed = gzipSync(data);
          await db.run('DELETE FROM agent_blobs WHERE node_id = ? AND name = ?', [node.id, name]);
          await db.run('INSERT INTO agent_blobs (node_id, name, data, sha256, size, created_at) VALUES (?, ?, ?, ?, ?, ?)', [node.id, name, packed, sha256, data.length, now()]);
          return { sha256, size: data.length };
        },
      },
      ports: ports.map((p): DriverPort => ({ uuid: p.uuid, address: p.address, pxe_enabled: !!p.pxe_enabled, extra: JSON.parse(p.extra) })),
      log,
      signal: abort.signal,
      async update(changes) {
        const merged: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(changes)) {
          if (v && typeof v === 'object' && !Array.isArray(v) && ['driver_internal_info', 'properties', 'instance_info'].includes(k)) {
            const cur = { ...(dnode as unknown as Record<string, Record<string, unknown>>)[k], ...(v as Record<string, unknown>) };
            for (const [kk, vv] of Object.entries(v as Record<string, unknown>)) if (vv === undefined) delete cur[kk];
            merged[k] = cur;
          } else merged[k] = v;
        }
        Object.assign(dnode, merged);
        await updateNode(db, node.id, merged as Partial<NodeRecord>);
      },
      async event(message, severity = 'info') {
        await addHistory(db, node.id, { event: message, event_type: 'conductor', severity: severity.toUpperCase() as HistorySeverity, conductor: self.hostname });
      },
    };
    return { task, driver, refresh: async () => (await nodeById(this.db, node.id))! };
  }

  /** Moves the node along the state machine, records it in its history. */
  private async transition(node: NodeRecord, event: ProvisionEvent, extra: Partial<NodeRecord> = {}, note?: string): Promise<NodeRecord> {
    const cur = (await nodeById(this.db, node.id))!;
    const to = next(cur.provision_state, event);
    if (!to) throw new Error(`invalid transition '${event}' from '${cur.provision_state}'`);
    const target = extra.target_provision_state !== undefined ? extra.target_provision_state : (TARGET_OF[to] ?? null);
    const started = cur.provision_updated_at ? Date.parse(cur.provision_updated_at) : undefined;
    const failed = event === 'fail' || event === 'abort';
    await this.db.tx(async (t) => {
      await updateNode(t, node.id, { ...extra, provision_state: to, target_provision_state: target, provision_updated_at: now() });
      await addHistory(t, node.id, {
      event: note ?? `${cur.provision_state} -> ${to} (${event})`,
      event_type: 'provisioning', severity: failed ? 'ERROR' : 'INFO', conductor: this.hostname,
      duration_ms: started ? Date.now() - started : null,
      });
    });
    return (await nodeById(this.db, node.id))!;
  }

  private async fail(node: NodeRecord, message: string, event: ProvisionEvent = 'fail'): Promise<void> {
    const cur = (await nodeById(this.db, node.id))!;
    const to = next(cur.provision_state, event);
    this.log.warn('operation failed', { node: node.uuid, state: cur.provision_state, error: message });
    if (!to) { await updateNode(this.db, node.id, { last_error: message }); return; }
    await this.transition(cur, event, { last_error: message, target_provision_state: to === S.ENROLL || to === S.ERROR ? null : cur.target_provision_state }, `${cur.provision_state} -> ${to}: ${message}`);
  }

  // ---------------------------------------------------------------- actions

  private async execute(action: TaskRow['action'], node: NodeRecord, args: Record<string, unknown>): Promise<unknown> {
    const { task, driver } = await this.taskFor(node);
    try {
      switch (action) {
        case 'verify': return await this.doVerify(node, task, driver);
        case 'clean': return await this.doClean(node, task, driver, args);
        case 'inspect': return await this.doInspect(node, task, driver);
        case 'deploy': return await this.doDeploy(node, task, driver, args);
        case 'undeploy': return await this.doUndeploy(node, task, driver);
        case 'abort': return await this.doAbort(node, task, driver);
        case 'adopt': return await this.doAdopt(node, task, driver);
        case 'rescue': case 'unrescue': return await this.doRescue(node, task, driver, action);
        case 'power': return await this.doPower(node, task, driver, args);
        case 'set_boot_device': {
          const device = args.boot_device as BootDevice;
          const supported = driver.management.supportedBootDevices(task);
          if (!supported.includes(device)) throw new DriverError(`Boot device '${device}' is not supported by node ${node.uuid}; supported: ${supported.join(', ')}.`, 'invalid_parameter');
          await driver.management.setBootDevice(task, device, !!args.persistent);
          await task.event(`boot device set to ${device}${args.persistent ? ' (persistent)' : ''}`);
          return null;
        }
        case 'get_boot_device': return await driver.management.getBootDevice(task);
        case 'validate': return await this.doValidate(task, driver);
        case 'console': {
          const enabled = !!args.enabled;
          if (enabled) await driver.console.startConsole(task); else await driver.console.stopConsole(task);
          await updateNode(this.db, node.id, { console_enabled: enabled });
          return null;
        }
        case 'heartbeat': return await this.doHeartbeat(node, task, driver, args);
      }
    } finally {
      this.aborts.delete(node.id);
    }
    throw new Error(`unknown task action '${action}'`);
  }

  /** Inspection found NICs: each MAC becomes a port of the node (unless some node has it already). */
  private async portsFromInventory(node: NodeRecord): Promise<void> {
    const fresh = await nodeById(this.db, node.id);
    const inv = fresh?.driver_internal_info.inspection_inventory as { interfaces?: { mac_address?: string }[] } | undefined;
    const added: string[] = [];
    for (const nic of inv?.interfaces ?? []) {
      const mac = String(nic.mac_address ?? '').toLowerCase();
      if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) continue;
      if (await this.db.get('SELECT id FROM ports WHERE address = ?', [mac])) continue;
      await this.db.run('INSERT INTO ports (uuid, address, node_id, created_at) VALUES (?, ?, ?, ?)', [uuidv4(), mac, node.id, now()]);
      added.push(mac);
    }
    if (added.length) await addHistory(this.db, node.id, { event: `inspection added ports ${added.join(', ')}`, event_type: 'introspection', conductor: this.hostname });
  }

  /** The power state after an operation, as the BMC reports it (null when it cannot say). */
  private async readPower(task: Task, d: ResolvedDriver): Promise<string | null> {
    try { return await d.power.getPowerState(task); } catch { return null; }
  }

  private async doVerify(node: NodeRecord, task: Task, d: ResolvedDriver): Promise<void> {
    try {
      await d.power.validate(task);
      await d.management.validate(task);
      const power = await d.power.getPowerState(task);
      await this.transition(node, 'done', { power_state: power, last_error: null });
    } catch (e) {
      await this.fail(node, `Failed to verify node ${node.uuid}: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private cleanStepsFor(task: Task, d: ResolvedDriver): CleanStep[] {
    return d.deploy.cleanSteps(task).filter((s) => s.priority > 0).sort((a, b) => b.priority - a.priority);
  }

  /** Cleaning: automated (provide/undeploy) or manual (clean with steps). Resumable after a wait. */
  private async doClean(node: NodeRecord, task: Task, d: ResolvedDriver, args: Record<string, unknown>): Promise<void> {
    const manual = Array.isArray(args.clean_steps);
    const automated = node.automated_clean ?? this.opts.automatedClean;
    let steps: (CleanStep & { args?: Record<string, unknown> })[];
    let index = 0;
    if (args.resume) {
      steps = (node.driver_internal_info.clean_steps as CleanStep[] | undefined) ?? [];
      index = Number(node.driver_internal_info.clean_step_index ?? -1) + 1;
    } else if (manual) {
      const offered = d.deploy.cleanSteps(task);
      steps = (args.clean_steps as { interface: string; step: string; args?: Record<string, unknown> }[]).map((s) => {
        const found = offered.find((o) => o.step === s.step && o.interface === s.interface);
        if (!found) throw new DriverError(`Clean step '${s.interface}.${s.step}' is not supported by node ${node.uuid}; offered: ${offered.map((o) => `${o.interface}.${o.step}`).join(', ') || 'none'}.`, 'invalid_parameter');
        return { ...found, args: s.args ?? {} };
      });
    } else {
      steps = automated ? this.cleanStepsFor(task, d) : [];
    }
    try {
      if (!args.resume) {
        await d.power.validate(task);
        await d.network.validate(task);
        await task.update({ driver_internal_info: { clean_steps: steps, clean_step_index: undefined, cleaning_manual: manual || undefined } });
        if (steps.length && d.deploy.prepareCleaning) {
          const r = await d.deploy.prepareCleaning(task);
          if (r === 'wait') { await this.transition(node, 'wait', { clean_step: {} }); return; }
        }
      }
      for (let i = index; i < steps.length; i++) {
        const step = steps[i]!;
        await updateNode(this.db, node.id, { clean_step: { interface: step.interface, step: step.step, priority: step.priority, args: step.args ?? {} } });
        await task.update({ driver_internal_info: { clean_step_index: i } });
        const started = Date.now();
        const r: StepResult = await d.deploy.executeCleanStep(task, step, step.args ?? {});
        if (r === 'wait') { await this.transition(node, 'wait'); return; }
        await addHistory(this.db, node.id, { event: `clean step ${step.interface}.${step.step} finished`, event_type: 'cleaning', conductor: this.hostname, duration_ms: Date.now() - started });
      }
      if (steps.length && d.deploy.tearDownCleaning) await d.deploy.tearDownCleaning(task);
      await task.update({ driver_internal_info: { clean_steps: undefined, clean_step_index: undefined, cleaning_manual: undefined } });
      const cur = (await nodeById(this.db, node.id))!;
      const isManual = manual || !!node.driver_internal_info.cleaning_manual;
      await this.transition(cur, isManual ? 'manage' : 'done', { clean_step: {}, last_error: null, power_state: await this.readPower(task, d) });
    } catch (e) {
      await d.deploy.tearDownCleaning?.(task).catch(() => undefined);
      await updateNode(this.db, node.id, { clean_step: {} });
      await this.fail(node, `Cleaning of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async doInspect(node: NodeRecord, task: Task, d: ResolvedDriver): Promise<void> {
    try {
      await updateNode(this.db, node.id, { inspection_started_at: now(), inspection_finished_at: null });
      await d.inspect.validate(task);
      const r = await d.inspect.inspectHardware(task);
      if (r === 'wait') { await this.transition(node, 'wait'); return; }
      await this.portsFromInventory(node);
      await this.transition(node, 'done', { inspection_finished_at: now(), last_error: null });
    } catch (e) {
      await this.fail(node, `Inspection of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async powerOffAfterFailure(task: Task, d: ResolvedDriver): Promise<void> {
    try {
      await d.power.setPowerState(task, 'power off');
      await task.update({ power_state: 'power off' });
    } catch (e) {
      await task.event(`could not power off after the failure: ${(e as Error).message}`, 'warning');
    }
  }

  private async doDeploy(node: NodeRecord, task: Task, d: ResolvedDriver, args: Record<string, unknown>): Promise<void> {
    try {
      if (!args.resume) {
        await d.power.validate(task);
        await d.boot.validate(task);
        await d.deploy.validate(task);
        await d.network.validate(task);
        if (args.configdrive !== undefined) await task.update({ instance_info: { configdrive: args.configdrive } });
        const r = await d.deploy.deploy(task);
        if (r === 'wait') { await this.transition(node, 'wait'); return; }
      }
      await this.transition(node, 'done', { last_error: null, deploy_step: {}, power_state: await this.readPower(task, d) });
    } catch (e) {
      if (task.node.power_state === 'power on' && !(e instanceof StepFailure)) await this.powerOffAfterFailure(task, d);
      await this.fail(node, `Deploy of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async doUndeploy(node: NodeRecord, task: Task, d: ResolvedDriver): Promise<void> {
    try {
      await d.deploy.tearDown(task);
      await d.boot.cleanUpInstance(task).catch(() => undefined);
      await task.update({ instance_info: Object.fromEntries(Object.keys(task.node.instance_info).map((k) => [k, undefined])) });
      const cleared = await this.transition(node, 'clean', { instance_uuid: null, last_error: null }, `${node.provision_state} -> cleaning (undeploy)`);
      await this.doClean(cleared, task, d, {});
    } catch (e) {
      if (e instanceof StepFailure) throw e;
      await this.fail(node, `Undeploy of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async doAbort(node: NodeRecord, task: Task, d: ResolvedDriver): Promise<void> {
    // The API already moved the node to its failed state; here the hardware is put back at rest.
    if (node.provision_state === S.CLEANFAIL) await d.deploy.tearDownCleaning?.(task).catch(() => undefined);
    await d.power.setPowerState(task, 'power off').catch((e) => task.event(`could not power off after abort: ${(e as Error).message}`, 'warning'));
    await updateNode(this.db, node.id, { power_state: 'power off', clean_step: {}, deploy_step: {} });
  }

  private async doAdopt(node: NodeRecord, task: Task, d: ResolvedDriver): Promise<void> {
    try {
      await d.power.validate(task);
      await d.boot.validate(task);
      const power = await d.power.getPowerState(task);
      await this.transition(node, 'done', { power_state: power, last_error: null });
    } catch (e) {
      await this.fail(node, `Adoption of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async doRescue(node: NodeRecord, task: Task, d: ResolvedDriver, action: 'rescue' | 'unrescue'): Promise<void> {
    try {
      await d.rescue.validate(task);
      await this.transition(node, 'done', { last_error: null });
    } catch (e) {
      await this.fail(node, `${action === 'rescue' ? 'Rescue' : 'Unrescue'} of node ${node.uuid} failed: ${(e as Error).message}`);
      throw new StepFailure((e as Error).message);
    }
  }

  private async doPower(node: NodeRecord, task: Task, d: ResolvedDriver, args: Record<string, unknown>): Promise<void> {
    const target = String(args.target);
    const timeout = typeof args.timeout === 'number' ? args.timeout : undefined;
    try {
      if (target === 'rebooting' || target === 'soft rebooting') await d.power.reboot(task, target === 'soft rebooting', timeout);
      else await d.power.setPowerState(task, target as 'power on' | 'power off' | 'soft power off', timeout);
      const state = target === 'soft power off' ? 'power off' : target.endsWith('rebooting') ? 'power on' : target;
      await updateNode(this.db, node.id, { power_state: state, target_power_state: null, last_error: null });
      this.powerFailures.delete(node.id);
      await addHistory(this.db, node.id, { event: `power state set to '${state}' (${target})`, event_type: 'power', conductor: this.hostname });
    } catch (e) {
      const msg = `Failed to change power state to '${target}' on node ${node.uuid}: ${(e as Error).message}`;
      await updateNode(this.db, node.id, { target_power_state: null, last_error: msg });
      await addHistory(this.db, node.id, { event: msg, event_type: 'power', severity: 'ERROR', conductor: this.hostname });
      throw new StepFailure(msg);
    }
  }

  private async doValidate(task: Task, d: ResolvedDriver): Promise<Record<string, { result: boolean | null; reason: string | null }>> {
    const out: Record<string, { result: boolean | null; reason: string | null }> = {};
    for (const [kind, impl] of Object.entries(d) as [string, { name: string; validate(t: Task): Promise<void> }][]) {
      if (impl.name.startsWith('no-')) { out[kind] = { result: null, reason: `not supported` }; continue; }
      try { await impl.validate(task); out[kind] = { result: true, reason: null }; } catch (e) { out[kind] = { result: false, reason: (e as Error).message }; }
    }
    return out;
  }

  /** The ramdisk agent called in: let the waiting interface decide whether its step finished. */
  private async doHeartbeat(node: NodeRecord, task: Task, d: ResolvedDriver, args: Record<string, unknown>): Promise<void> {
    const handler = node.provision_state === S.INSPECTWAIT ? d.inspect.heartbeat?.bind(d.inspect) : d.deploy.heartbeat?.bind(d.deploy);
    if (!WAIT_STATES.has(node.provision_state) || !handler) return;
    let r: StepResult;
    try {
      r = await handler(task, (args.payload as Record<string, unknown>) ?? {});
    } catch (e) {
      // As Ironic (power_off_after_deploy_failure): a failed deployment is powered off, so
      // that a half-written disk is never left running or booted.
      if (node.provision_state === S.DEPLOYWAIT && task.node.power_state === 'power on') await this.powerOffAfterFailure(task, d);
      await this.fail(node, (e as Error).message);
      throw new StepFailure((e as Error).message);
    }
    if (r !== 'done') {
      await updateNode(this.db, node.id, { provision_updated_at: now() });
      return;
    }
    switch (node.provision_state) {
      case S.DEPLOYWAIT: {
        const resumed = await this.transition(node, 'resume');
        await this.doDeploy(resumed, task, d, { resume: true });
        break;
      }
      case S.CLEANWAIT: {
        const resumed = await this.transition(node, 'resume');
        await this.doClean(resumed, task, d, { resume: true });
        break;
      }
      case S.INSPECTWAIT:
        await this.portsFromInventory(node);
        await this.transition(node, 'done', { inspection_finished_at: now(), last_error: null });
        break;
      case S.RESCUEWAIT: {
        const resumed = await this.transition(node, 'resume');
        await this.transition(resumed, 'done');
        break;
      }
    }
  }

  // ---------------------------------------------------------------- periodic duties

  /** Nodes this conductor looks after (ring), at rest, not in maintenance. */
  private async myIdleNodes(where: string, params: unknown[]): Promise<NodeRecord[]> {
    const live = await this.ring.live();
    const rows = await this.db.all<{ id: number; uuid: string; driver: string; conductor_group: string }>(
      `SELECT id, uuid, driver, conductor_group FROM nodes WHERE reservation IS NULL AND conductor_group = ? AND ${where}`, [this.group, ...params]);
    const mine = rows.filter((r) => pickFrom(live, r) === this.hostname);
    const out: NodeRecord[] = [];
    for (const r of mine) { const n = await nodeById(this.db, r.id); if (n) out.push(n); }
    return out;
  }

  /** Reads every node's power state from its BMC and records changes; a BMC that fails is reported, not retried forever. */
  async syncPowerStates(): Promise<void> {
    const nodes = await this.myIdleNodes("maintenance = 0 AND provision_state NOT IN ('enroll', 'verifying') AND target_power_state IS NULL", []);
    const queue = [...nodes];
    const worker = async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        // Take the lock so that no operation races the sync; skip nodes someone else took.
        if (!(await updateNode(this.db, n.id, { reservation: this.hostname }, { reservation: null }))) continue;
        try {
          const { task, driver } = await this.taskFor(n);
          const state = await driver.power.getPowerState(task);
          this.powerFailures.delete(n.id);
          if (state !== n.power_state) {
            await updateNode(this.db, n.id, { power_state: state, ...(n.power_state === null && n.last_error?.startsWith('Power state sync') ? { last_error: null } : {}) });
            await addHistory(this.db, n.id, { event: `power state changed outside ooo: ${n.power_state ?? 'None'} -> ${state ?? 'None'}`, event_type: 'monitoring', severity: 'WARNING', conductor: this.hostname });
          }
        } catch (e) {
          const count = (this.powerFailures.get(n.id) ?? 0) + 1;
          this.powerFailures.set(n.id, count);
          const msg = `Power state sync failed for node ${n.uuid} (${count} time${count > 1 ? 's' : ''}): ${(e as Error).message}`;
          if (n.power_state !== null || n.last_error !== msg) {
            await updateNode(this.db, n.id, { power_state: null, last_error: msg });
            if (count === 1) await addHistory(this.db, n.id, { event: msg, event_type: 'monitoring', severity: 'ERROR', conductor: this.hostname });
          }
        } finally {
          this.aborts.delete(n.id);
          await updateNode(this.db, n.id, { reservation: null }, { reservation: this.hostname });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, queue.length) }, worker));
  }

  /** Nodes left waiting for a ramdisk that never called back fail with a clear message. */
  async checkWaitTimeouts(): Promise<void> {
    const cutoff = new Date(Date.now() - this.opts.waitTimeoutS * 1000).toISOString();
    const waits = [...WAIT_STATES];
    const nodes = await this.myIdleNodes(`provision_state IN (${waits.map(() => '?').join(', ')}) AND provision_updated_at < ?`, [...waits, cutoff]);
    for (const n of nodes) {
      if (!(await updateNode(this.db, n.id, { reservation: this.hostname }, { reservation: null, provision_state: n.provision_state }))) continue;
      try {
        const { task, driver } = await this.taskFor(n);
        await driver.power.setPowerState(task, 'power off').catch(() => undefined);
        await this.fail(n, `Timeout reached while waiting for callback for node ${n.uuid} in state '${n.provision_state}' (no call-back from the ramdisk agent in ${this.opts.waitTimeoutS} s)`);
      } finally {
        this.aborts.delete(n.id);
        await updateNode(this.db, n.id, { reservation: null }, { reservation: this.hostname });
      }
    }
  }

  /** At start: tasks this conductor was running before it stopped cannot resume. */
  private async recoverOwn(): Promise<void> {
    await this.releaseDead(this.hostname, 'restarted');
  }

  /** Conductors that stopped heart-beating: their queued work moves, their running work fails clearly. */
  async takeOverDead(): Promise<void> {
    const cutoff = new Date(Date.now() - this.opts.deadAfterS * 1000).toISOString();
    const dead = await this.db.all<{ hostname: string }>('SELECT hostname FROM conductors WHERE hostname <> ? AND (online = 0 OR alive_at < ?)', [this.hostname, cutoff]);
    for (const { hostname } of dead) {
      const held = await this.db.get<{ c: number }>('SELECT COUNT(*) AS c FROM nodes WHERE reservation = ?', [hostname]);
      const tasks = await this.db.get<{ c: number }>('SELECT COUNT(*) AS c FROM node_tasks WHERE conductor = ?', [hostname]);
      if (!Number(held?.c) && !Number(tasks?.c)) continue;
      await this.db.run('UPDATE conductors SET online = 0 WHERE hostname = ? AND alive_at < ?', [hostname, cutoff]);
      this.log.warn('taking over the nodes of a dead conductor', { dead: hostname });
      await this.releaseDead(hostname, 'went offline');
    }
  }

  private async releaseDead(hostname: string, why: string): Promise<void> {
    this.ring.invalidate();
    const live = (await this.ring.live()).filter((c) => c.hostname !== hostname || hostname === this.hostname);
    // Queued (not started) work is handed to a live conductor, as if the API had picked it.
    const queued = await this.db.all<TaskRow & { uuid: string; driver: string; conductor_group: string }>(
      "SELECT t.*, n.uuid, n.driver, n.conductor_group FROM node_tasks t JOIN nodes n ON n.id = t.node_id WHERE t.conductor = ? AND t.status = 'queued'", [hostname]);
    for (const t of queued) {
      if (hostname === this.hostname) continue; // our own queue: we will run it
      const to = pickFrom(live, t);
      if (!to) continue;
      await this.db.tx(async (tx) => {
        const moved = await tx.run("UPDATE node_tasks SET conductor = ? WHERE id = ? AND status = 'queued' AND conductor = ?", [to, t.id, hostname]);
        if (moved.changes && t.exclusive) await tx.run('UPDATE nodes SET reservation = ? WHERE id = ? AND reservation = ?', [to, t.node_id, hostname]);
      });
    }
    if (queued.length) await this.db.notify(TASKS_CHANNEL);
    // Running work cannot resume: the node goes to its failed state with the reason.
    const running = await this.db.all<TaskRow>("SELECT * FROM node_tasks WHERE conductor = ? AND status = 'running'", [hostname]);
    for (const t of running) {
      await this.db.run("UPDATE node_tasks SET status = 'failed', result = ?, finished_at = ? WHERE id = ?", [JSON.stringify({ error: `conductor ${hostname} ${why} while running the task` }), now(), t.id]);
      if (!JSON.parse(t.args).reply) await this.db.run('DELETE FROM node_tasks WHERE id = ?', [t.id]);
    }
    if (running.length) await this.db.notify(DONE_CHANNEL);
    const stillQueued = new Set((await this.db.all<{ node_id: number }>("SELECT node_id FROM node_tasks WHERE conductor = ? AND status = 'queued' AND exclusive = 1", [hostname])).map((r) => Number(r.node_id)));
    const nodes = await this.db.all<{ id: number }>('SELECT id FROM nodes WHERE reservation = ?', [hostname]);
    for (const { id } of nodes) {
      if (hostname === this.hostname && stillQueued.has(id)) continue;
      const n = await nodeById(this.db, id);
      if (!n) continue;
      const msg = `Conductor ${hostname} ${why} while the node was ${n.provision_state}${n.target_power_state ? ` (power change to '${n.target_power_state}')` : ''}; the operation was interrupted, retry it.`;
      if (ACTIVE_WORK.has(n.provision_state) && failStateOf(n.provision_state)) {
        await updateNode(this.db, id, { reservation: null, target_power_state: null });
        await this.fail(n, msg);
      } else {
        await updateNode(this.db, id, { reservation: null, target_power_state: null, ...(n.target_power_state ? { last_error: msg } : {}) });
      }
      await addHistory(this.db, id, { event: msg, event_type: 'takeover', severity: 'WARNING', conductor: this.hostname });
    }
  }
}
