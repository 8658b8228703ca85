/**
 * The routes the ramdisk agent uses: lookup (find my node by MAC) and heartbeat. They need no
 * Keystone token; a per-deployment agent token, handed out once at lookup, authenticates the
 * agent instead, and is never valid for another node.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../../store/db.js';
import { ApiError, Router, badRequest, notFound } from '../http.js';
import { addHistory, findNode, updateNode } from '../../store/nodes.js';
import { isMac, normalizeMac } from '../../util/ids.js';
import { S } from '../../conductor/states.js';
import { Dispatcher } from './dispatch.js';
import { BAREMETAL_PREFIX, nodeLocked, objectBody } from './common.js';
import type { AgentCommand } from '../../drivers/agent/commands.js';
import type { Request } from '../http.js';
import type { NodeRecord } from '../../model/node.js';

/** States in which a node's ramdisk may look itself up and call back. */
export const AGENT_STATES: ReadonlySet<string> = new Set([S.DEPLOYING, S.DEPLOYWAIT, S.CLEANING, S.CLEANWAIT, S.INSPECTING, S.INSPECTWAIT, S.RESCUING, S.RESCUEWAIT]);

/** The node, if `got` equals the secret the node keeps under `key` (constant-time compare); 403 otherwise. */
async function nodeWithSecret(db: Db, ident: string, key: 'agent_secret_token' | 'os_report_token', got: unknown, what: string): Promise<NodeRecord> {
  const node = await findNode(db, ident);
  if (!node) throw notFound(`Node ${ident} could not be found.`);
  const want = node.driver_internal_info[key];
  if (typeof want !== 'string' || typeof got !== 'string' || got.length !== want.length || !timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
    throw new ApiError(403, `Invalid or missing ${what} received.`);
  }
  return node;
}

export function agentRoutes(router: Router, db: Db, dispatcher: Dispatcher, heartbeatTimeoutS = 300): void {
  const pub = { style: 'ironic' as const, public: true };
  const V = `${BAREMETAL_PREFIX}/v1`;

  router.add(pub, 'GET', `${V}/lookup`, async (req) => {
    const raw = req.query.get('addresses') ?? '';
    const macs = raw.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = macs.find((m) => !isMac(m));
    if (bad) throw badRequest(`Invalid MAC address in addresses: '${bad}'.`);
    const nodeUuid = req.query.get('node_uuid');
    if (!macs.length && !nodeUuid) throw badRequest('One of addresses and node_uuid parameters is required');
    let node;
    if (nodeUuid) node = await findNode(db, nodeUuid);
    else {
      const rows = await db.all<{ uuid: string }>(`SELECT DISTINCT n.uuid FROM ports p JOIN nodes n ON n.id = p.node_id WHERE p.address IN (${macs.map(() => '?').join(', ')})`, macs.map(normalizeMac));
      if (rows.length > 1) throw new ApiError(409, `The addresses ${macs.join(', ')} belong to more than one node.`);
      if (rows.length) node = await findNode(db, rows[0]!.uuid);
    }
    if (!node || !AGENT_STATES.has(node.provision_state)) throw notFound('Node with the given addresses could not be found or is not waiting for an agent.');
    let token = node.driver_internal_info.agent_secret_token as string | undefined;
    let shown = '******';
    if (!token) {
      token = randomBytes(32).toString('base64url');
      shown = token;
      const info = { ...node.driver_internal_info, agent_secret_token: token };
      await updateNode(db, node.id, { driver_internal_info: info });
    }
    return {
      body: {
        node: { uuid: node.uuid, properties: node.properties, instance_info: { image_source: node.instance_info.image_source ?? null }, driver_internal_info: { agent_url: node.driver_internal_info.agent_url ?? null } },
        config: { heartbeat_timeout: heartbeatTimeoutS, agent_token: shown, agent_token_required: true },
      },
    };
  });

  router.add(pub, 'POST', `${V}/heartbeat/:node`, async (req) => {
    const b = objectBody(req, 'heartbeat');
    const node = await nodeWithSecret(db, req.params.node!, 'agent_secret_token', b.agent_token, 'agent token');
    if (!AGENT_STATES.has(node.provision_state)) throw new ApiError(409, `Node ${node.uuid} is in state ${node.provision_state}, not waiting for its agent.`);
    if (node.reservation) throw nodeLocked(node.uuid, node.reservation);
    if (typeof b.callback_url === 'string') {
      await updateNode(db, node.id, { driver_internal_info: { ...node.driver_internal_info, agent_url: b.callback_url, agent_last_heartbeat: new Date().toISOString() } });
    }
    await dispatcher.call(node, 'heartbeat', { payload: b }, true, 120_000);
    return { status: 202 };
  });

  // ---- the ooo agent's command channel (docs/agent-protocol.md) ----
  const agentNode = (req: Request) => nodeWithSecret(db, req.params.node!, 'agent_secret_token', req.headers['x-agent-token'], 'agent token');
  /** Tells the node's conductor that the agent called; retried briefly if the node is busy. */
  const queueHeartbeat = async (node: NodeRecord, payload: Record<string, unknown>) => {
    for (let i = 0; ; i++) {
      try { await dispatcher.queue(node, 'heartbeat', { payload }); return; } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409 || i >= 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const text = (body: string) => ({ body, headers: { 'Content-Type': 'text/plain; charset=UTF-8' } });

  router.add(pub, 'GET', `${V}/agent/:node/commands/next`, async (req) => {
    // Long poll: with ?wait=S (at most 20) the answer comes as soon as a command is queued, so the
    // agent does not sleep between the steps of a deployment.
    const waitS = Math.min(20, Math.max(0, Number(req.query.get('wait') ?? 0) || 0));
    const deadline = Date.now() + waitS * 1000;
    for (;;) {
      const node = await agentNode(req);
      if (!AGENT_STATES.has(node.provision_state)) return text('command=none\n');
      const info = node.driver_internal_info;
      const list = ((info.agent_commands as AgentCommand[] | undefined) ?? []).map((c) => ({ ...c }));
      const next = node.reservation ? undefined : list.find((c) => c.status === 'pending');
      const first = !info.agent_connected;
      if (!next && !first && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 100)); continue; }
      if (node.reservation) return text('command=none\n');
      if (next) next.status = 'sent';
      const changed = { ...info, agent_commands: list, agent_connected: true, agent_last_seen: new Date().toISOString(), ...(req.query.get('agent_version') ? { agent_version: req.query.get('agent_version') } : {}) };
      if (!(await updateNode(db, node.id, { driver_internal_info: changed }, { reservation: null }))) {
        if (Date.now() < deadline) { await new Promise((r) => setTimeout(r, 100)); continue; }
        return text('command=none\n');
      }
      if (first) {
        await addHistory(db, node.id, { event: `ramdisk agent connected from ${req.remoteAddress.replace(/^::ffff:/, '')} (${node.provision_state})`, event_type: 'agent' });
        await queueHeartbeat(node, { event: 'connected' });
      }
      if (!next) return text('command=none\n');
      return text([`id=${next.id}`, `command=${next.command}`, ...Object.entries(next.args).map(([k, v]) => `arg.${k}=${String(v)}`)].join('\n') + '\n');
    }
  });

  router.add(pub, 'POST', `${V}/agent/:node/commands/:id`, async (req) => {
    const node = await agentNode(req);
    if (node.reservation) throw nodeLocked(node.uuid, node.reservation);
    const b = objectBody(req, 'command result');
    if (b.status !== 'ok' && b.status !== 'error') throw badRequest('Invalid command result: "status" must be "ok" or "error".');
    const info = node.driver_internal_info;
    const list = ((info.agent_commands as AgentCommand[] | undefined) ?? []).map((c) => ({ ...c }));
    const cmd = list.find((c) => c.id === req.params.id);
    if (!cmd) throw notFound(`Node ${node.uuid} has no agent command ${req.params.id}.`);
    if (cmd.status === 'ok' || cmd.status === 'error') return { status: 200, body: { id: cmd.id, status: cmd.status } };
    cmd.status = b.status;
    cmd.message = typeof b.message === 'string' ? b.message.slice(0, 4000) : undefined;
    cmd.data = b.data ?? null;
    cmd.finished_at = new Date().toISOString();
    if (!(await updateNode(db, node.id, { driver_internal_info: { ...info, agent_commands: list, agent_last_seen: cmd.finished_at } }, { reservation: null }))) throw nodeLocked(node.uuid, 'another host');
    await queueHeartbeat(node, { command: cmd.id });
    return { status: 200, body: { id: cmd.id, status: cmd.status } };
  });

  router.add(pub, 'GET', `${V}/agent/:node/blobs/:name`, async (req) => {
    const node = await agentNode(req);
    const row = await db.get<{ data: Buffer }>('SELECT data FROM agent_blobs WHERE node_id = ? AND name = ?', [node.id, req.params.name]);
    if (!row) throw notFound(`Node ${node.uuid} has no blob ${req.params.name}.`);
    return { body: Buffer.from(row.data), headers: { 'Content-Type': 'application/gzip' } };
  });

  // The deployed OS reports in (config agent), with the report token from its config drive.
  router.add(pub, 'POST', `${V}/agent/:node/report`, async (req) => {
    const node = await nodeWithSecret(db, req.params.node!, 'os_report_token', req.headers['x-report-token'], 'report token');
    const b = objectBody(req, 'report');
    const report = { hostname: String(b.hostname ?? '').slice(0, 255), kernel: String(b.kernel ?? '').slice(0, 255), addresses: String(b.addresses ?? '').slice(0, 1000), at: new Date().toISOString() };
    for (let i = 0; ; i++) {
      const fresh = (await findNode(db, node.uuid))!;
      if (await updateNode(db, node.id, { driver_internal_info: { ...fresh.driver_internal_info, os_report: report } }, { reservation: null })) break;
      if (i > 50) throw nodeLocked(node.uuid, fresh.reservation ?? 'another host');
      await new Promise((r) => setTimeout(r, 100));
    }
    const { addHistory } = await import('../../store/nodes.js');
    await addHistory(db, node.id, { event: `deployed OS reported in: ${report.hostname} (${report.kernel}) at ${report.addresses}`, event_type: 'deploying' });
    return { status: 200, body: { reported_at: report.at } };
  });
}
