/**
 * A Redfish client: service root, sessions (X-Auth-Token) with a Basic-auth fallback, systems,
 * power and reset, boot override (PATCH with If-Match), virtual media. One keep-alive agent and
 * one session per client; a 401 on an expired session logs in again once. Redfish error bodies
 * become RedfishError with a kind the caller can act on.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { BootEnabled, BootMode, BootTarget, ExtendedInfo, RedfishBoot, ResetType } from './common.js';

export type RedfishErrorKind = 'auth' | 'not_found' | 'bad_request' | 'precondition' | 'unreachable' | 'timeout' | 'protocol' | 'server';

export class RedfishError extends Error {
  constructor(
    message: string,
    readonly kind: RedfishErrorKind,
    readonly status?: number,
    /** The Redfish error code (e.g. Base.1.8.PropertyValueNotInList), when the BMC sent one. */
    readonly code?: string,
    readonly extendedInfo: ExtendedInfo[] = [],
  ) {
    super(message);
    this.name = 'RedfishError';
  }
}

export interface RedfishClientOptions {
  /** http(s)://host:port */
  address: string;
  username?: string;
  password?: string;
  /** true (default): verify the BMC certificate; false: accept any; a string: path of a CA bundle. */
  verify?: boolean | string;
  /** Milliseconds one request may take, the retry included (default 10000). */
  timeoutMs?: number;
  /** auto (default): a session, Basic when sessions are not offered; session; basic. */
  authType?: 'auto' | 'session' | 'basic';
}

export interface RedfishResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body (undefined when empty). */
  body: unknown;
}

export interface SystemInfo {
  /** Path of the resource (@odata.id). */
  path: string;
  id: string;
  name?: string;
  uuid?: string;
  powerState: string | null;
  boot: RedfishBoot & { allowedTargets?: string[] };
  resetTarget: string;
  resetTypes?: string[];
  ethernetInterfaces?: string;
  etag?: string;
  raw: Record<string, unknown>;
}

export interface VirtualMediaInfo {
  path: string;
  id: string;
  mediaTypes: string[];
  image: string | null;
  inserted: boolean;
  insertTarget?: string;
  ejectTarget?: string;
}

const MAX_RESPONSE = 16 * 1024 * 1024;
type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function odataId(v: unknown): string | undefined {
  return isObj(v) && typeof v['@odata.id'] === 'string' ? v['@odata.id'] : undefined;
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

export class RedfishClient {
  readonly address: string;
  private readonly base: URL;
  private readonly username?: string;
  private readonly password?: string;
  private readonly timeoutMs: number;
  private readonly authType: 'auto' | 'session' | 'basic';
  private readonly agent: http.Agent;
  private token?: string;
  private sessionUri?: string;
  private mode?: 'session' | 'basic' | 'none';
  private loggingIn?: Promise<void>;
  private rootCache?: Obj;

  constructor(opts: RedfishClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.address);
    } catch {
      throw new RedfishError(`Redfish address '${opts.address}' is not a URL (http(s)://host:port).`, 'bad_request');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new RedfishError(`Redfish address '${opts.address}' must use http or https.`, 'bad_request');
    this.base = base;
    this.address = `${base.protocol}//${base.host}`;
    this.username = opts.username;
    this.password = opts.password;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.authType = opts.authType ?? 'auto';
    if (base.protocol === 'https:') {
      const verify = opts.verify ?? true;
      let ca: Buffer | undefined;
      if (typeof verify === 'string') {
        try { ca = readFileSync(verify); } catch (e) { throw new RedfishError(`cannot read the CA bundle ${verify}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'bad_request'); }
      }
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: verify !== false, ...(ca ? { ca } : {}) });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    }
  }

  // ---- transport ----

  private once(method: string, path: string, body: unknown, headers: Record<string, string>, deadline: number): Promise<RedfishResponse> {
    return new Promise((resolve, reject) => {
      let url: URL;
      try {
        // Paths only: whatever host a resource link names, requests go to this BMC.
        const u = new URL(path, this.base);
        url = new URL(u.pathname + u.search, this.base);
      } catch {
        reject(new RedfishError(`'${String(path).slice(0, 100)}' from ${this.address} is not a usable resource path.`, 'protocol'));
        return;
      }
      const text = body === undefined ? undefined : JSON.stringify(body);
      const h: Record<string, string | number> = { Accept: 'application/json', 'OData-Version': '4.0', ...headers };
      if (text !== undefined) { h['Content-Type'] = 'application/json'; h['Content-Length'] = Buffer.byteLength(text); }
      const mod = url.protocol === 'https:' ? https : http;
      const left = Math.max(1, deadline - Date.now());
      let done = false;
      const fail = (e: RedfishError) => { if (!done) { done = true; clearTimeout(timer); req.destroy(); reject(e); } };
      let req: http.ClientRequest;
      try {
        req = mod.request(url, { method, headers: h, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE) { fail(new RedfishError(`${method} ${url.pathname}: the response from ${this.address} is larger than ${MAX_RESPONSE} bytes.`, 'protocol', res.statusCode)); res.destroy(); return; }
          chunks.push(c);
        });
        res.on('error', (e) => fail(new RedfishError(`${method} ${url.pathname}: the connection to ${this.address} broke: ${e.message}`, 'unreachable')));
        res.on('aborted', () => fail(new RedfishError(`${method} ${url.pathname}: the connection to ${this.address} broke mid-response.`, 'unreachable')));
        res.on('end', () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          let bad = false;
          if (raw.trim() !== '') {
            try { parsed = JSON.parse(raw); } catch { bad = true; parsed = raw; }
          }
          const out: RedfishResponse = { status: res.statusCode ?? 0, headers: res.headers, body: parsed };
          if (bad && out.status >= 200 && out.status < 300) {
            reject(new RedfishError(`${method} ${url.pathname}: ${this.address} answered ${out.status} with a body that is not JSON.`, 'protocol', out.status));
            return;
          }
          resolve(out);
        });
      });
      } catch (e) {
        reject(new RedfishError(`${method} ${url.pathname}: cannot send the request to ${this.address}: ${(e as Error).message}`, 'protocol'));
        return;
      }
      const timer = setTimeout(() => fail(new RedfishError(`${method} ${url.pathname}: no answer from the BMC at ${this.address} within ${this.timeoutMs} ms.`, 'timeout')), left);
      req.on('error', (e: NodeJS.ErrnoException) => {
        const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|SSL|HOSTNAME/i.test(`${e.code ?? ''} ${e.message}`);
        const why = tls ? `TLS: ${e.message} (set verify false or give the BMC's CA)` : `${e.code ?? e.message}`;
        // A POST or PATCH is repeated only when it cannot have reached the BMC: the connection was
        // refused, or a reused keep-alive socket had been closed by the BMC.
        const safe = method === 'GET' || method === 'HEAD' || method === 'DELETE' || e.code === 'ECONNREFUSED' || (req.reusedSocket && e.code === 'ECONNRESET');
        fail(Object.assign(new RedfishError(`${method} ${url.pathname}: cannot reach the BMC at ${this.address}: ${why}`, 'unreachable'), { cause: e, retryable: !tls && safe }));
      });
      req.end(text);
    });
  }

  /** One HTTP request with one retry on a connection error (a stale keep-alive socket, a BMC restarting). */
  async raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RedfishResponse> {
    const deadline = Date.now() + this.timeoutMs;
    try {
      return await this.once(method, path, body, headers, deadline);
    } catch (e) {
      if (!(e instanceof RedfishError) || e.kind !== 'unreachable' || (e as { retryable?: boolean }).retryable === false) throw e;
      const wait = Math.min(200, deadline - Date.now());
      if (wait <= 0) throw e;
      await new Promise((r) => setTimeout(r, wait));
      return this.once(method, path, body, headers, deadline);
    }
  }

  private decode(method: string, path: string, r: RedfishResponse): RedfishError {
    const err = isObj(r.body) && isObj(r.body.error) ? r.body.error : undefined;
    const code = err && typeof err.code === 'string' ? err.code : undefined;
    const ext = err && Array.isArray(err['@Message.ExtendedInfo']) ? (err['@Message.ExtendedInfo'].filter(isObj) as ExtendedInfo[]) : [];
    const msgs = [err && typeof err.message === 'string' ? err.message : undefined, ...ext.map((x) => (typeof x.Message === 'string' ? x.Message : undefined))]
      .filter((x): x is string => !!x);
    const detail = [...new Set(msgs)].join(' ') || (typeof r.body === 'string' ? r.body.slice(0, 200) : '');
    const what = `${method} ${path} on ${this.address}: HTTP ${r.status}${detail ? `: ${detail}` : ''}`;
    const kind: RedfishErrorKind = r.status === 401 || r.status === 403 ? 'auth'
      : r.status === 404 ? 'not_found'
        : r.status === 412 ? 'precondition'
          : r.status >= 400 && r.status < 500 ? 'bad_request'
            : r.status >= 500 && r.status < 600 ? 'server' : 'protocol';
    const prefix = kind === 'auth' ? 'authentication failed (check the user name and password): ' : '';
    return new RedfishError(prefix + what, kind, r.status, code, ext);
  }

  // ---- authentication ----

  private authHeaders(): Record<string, string> {
    if (this.mode === 'session' && this.token) return { 'X-Auth-Token': this.token };
    if (this.mode === 'basic') return { Authorization: `Basic ${Buffer.from(`${this.username ?? ''}:${this.password ?? ''}`).toString('base64')}` };
    return {};
  }

  private async login(): Promise<void> {
    if (this.username === undefined) { this.mode = 'none'; return; }
    if (this.authType === 'basic') { this.mode = 'basic'; return; }
    let sessions: string | undefined;
    try {
      const root = await this.serviceRoot();
      sessions = odataId(isObj(root.Links) ? root.Links.Sessions : undefined);
      if (!sessions) {
        const ss = odataId(root.SessionService);
        if (ss) {
          const r = await this.raw('GET', ss);
          if (r.status === 200 && isObj(r.body)) sessions = odataId(r.body.Sessions);
        }
      }
    } catch (e) {
      if (!(e instanceof RedfishError) || e.kind === 'unreachable' || e.kind === 'timeout' || this.authType === 'session') throw e;
    }
    sessions ??= '/redfish/v1/SessionService/Sessions';
    const r = await this.raw('POST', sessions, { UserName: this.username, Password: this.password ?? '' });
    const token = r.headers['x-auth-token'];
    if (r.status >= 200 && r.status < 300 && typeof token === 'string' && token) {
      this.token = token;
      const loc = r.headers.location ?? odataId(r.body);
      // Only the path: the session is deleted on this BMC, whatever host the Location names.
      try { this.sessionUri = typeof loc === 'string' ? new URL(loc, this.base).pathname : undefined; } catch { this.sessionUri = undefined; }
      this.mode = 'session';
      return;
    }
    if (r.status === 401 || r.status === 403) throw this.decode('POST', sessions, r);
    if (this.authType === 'session') {
      throw r.status >= 400 ? this.decode('POST', sessions, r) : new RedfishError(`POST ${sessions} on ${this.address}: no X-Auth-Token in the answer; sessions are not usable (use Basic authentication).`, 'protocol', r.status);
    }
    this.mode = 'basic';
  }

  private ensureLogin(): Promise<void> {
    if (this.mode) return Promise.resolve();
    this.loggingIn ??= this.login().finally(() => { this.loggingIn = undefined; });
    return this.loggingIn;
  }

  /** An authenticated request; HTTP errors become RedfishError. */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RedfishResponse> {
    await this.ensureLogin();
    const sent = this.token;
    let r = await this.raw(method, path, body, { ...headers, ...this.authHeaders() });
    if (r.status === 401 && this.mode === 'session') {
      // The session expired or was deleted by the BMC: log in again, once.
      if (this.token === sent) { this.mode = undefined; this.token = undefined; this.sessionUri = undefined; }
      await this.ensureLogin();
      r = await this.raw(method, path, body, { ...headers, ...this.authHeaders() });
    }
    if (r.status < 200 || r.status >= 300) throw this.decode(method, path, r);
    return r;
  }

  private async getObj(path: string): Promise<{ body: Obj; etag?: string }> {
    const r = await this.request('GET', path);
    if (!isObj(r.body)) throw new RedfishError(`GET ${path} on ${this.address}: expected a JSON object, got ${r.body === undefined ? 'an empty body' : typeof r.body}.`, 'protocol', r.status);
    const etag = r.headers.etag;
    return { body: r.body, etag: typeof etag === 'string' ? etag : undefined };
  }

  // ---- resources ----

  /** The service root (no authentication needed). */
  async serviceRoot(): Promise<Obj> {
    if (this.rootCache) return this.rootCache;
    const r = await this.raw('GET', '/redfish/v1/');
    if (r.status !== 200) throw this.decode('GET', '/redfish/v1/', r);
    if (!isObj(r.body)) throw new RedfishError(`GET /redfish/v1/ on ${this.address}: the service root is not a JSON object.`, 'protocol', r.status);
    this.rootCache = r.body;
    return r.body;
  }

  private async collection(path: string): Promise<string[]> {
    const { body } = await this.getObj(path);
    if (!Array.isArray(body.Members)) throw new RedfishError(`GET ${path} on ${this.address}: the collection has no Members list.`, 'protocol');
    return body.Members.map(odataId).filter((x): x is string => !!x);
  }

  /** Paths of the systems (/redfish/v1/Systems/x). */
  async systems(): Promise<string[]> {
    const root = await this.serviceRoot();
    const p = odataId(root.Systems);
    if (!p) throw new RedfishError(`the service root of ${this.address} has no Systems collection.`, 'protocol');
    return this.collection(p);
  }

  /** Resolve a system given as a path, an Id, or nothing (the only one). */
  async systemPath(id?: string): Promise<string> {
    if (id && id.startsWith('/')) return id;
    const all = await this.systems();
    if (!id) {
      if (all.length === 1) return all[0]!;
      throw new RedfishError(`the BMC at ${this.address} has ${all.length} systems (${all.join(', ') || 'none'}); name one with its path.`, all.length === 0 ? 'not_found' : 'bad_request');
    }
    const hit = all.find((p) => p.replace(/\/+$/, '').split('/').pop() === id);
    if (!hit) throw new RedfishError(`the BMC at ${this.address} has no system '${id}' (it has ${all.join(', ') || 'none'}).`, 'not_found', 404);
    return hit;
  }

  async system(id?: string): Promise<SystemInfo> {
    const path = await this.systemPath(id);
    const { body, etag } = await this.getObj(path);
    const boot = isObj(body.Boot) ? body.Boot : {};
    const actions = isObj(body.Actions) ? body.Actions : {};
    const reset = isObj(actions['#ComputerSystem.Reset']) ? actions['#ComputerSystem.Reset'] : {};
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      path: odataId(body) ?? path,
      id: str(body.Id) ?? path.split('/').pop()!,
      name: str(body.Name),
      uuid: str(body.UUID),
      powerState: str(body.PowerState) ?? null,
      boot: {
        BootSourceOverrideTarget: str(boot.BootSourceOverrideTarget),
        BootSourceOverrideEnabled: str(boot.BootSourceOverrideEnabled),
        BootSourceOverrideMode: str(boot.BootSourceOverrideMode),
        allowedTargets: strings(boot['BootSourceOverrideTarget@Redfish.AllowableValues']),
      },
      resetTarget: str(reset.target) ?? `${path.replace(/\/+$/, '')}/Actions/ComputerSystem.Reset`,
      resetTypes: strings(reset['ResetType@Redfish.AllowableValues']),
      ethernetInterfaces: odataId(body.EthernetInterfaces),
      etag,
      raw: body,
    };
  }

  /** 'On', 'Off', 'PoweringOn', 'PoweringOff', or null when the BMC does not say. */
  async powerState(id?: string): Promise<string | null> {
    return (await this.system(id)).powerState;
  }

  async reset(type: ResetType, id?: string): Promise<void> {
    const s = await this.system(id);
    if (s.resetTypes && !s.resetTypes.includes(type)) throw new RedfishError(`system ${s.path} on ${this.address} does not allow ResetType ${type} (it allows ${s.resetTypes.join(', ')}).`, 'bad_request');
    await this.request('POST', s.resetTarget, { ResetType: type });
  }

  /**
   * Set the boot override. With `etag` (or `ifMatch: true`, which reads the current one) the
   * PATCH carries If-Match; a mismatch is a RedfishError of kind 'precondition'.
   */
  async setBoot(boot: { target?: BootTarget | string; enabled?: BootEnabled | string; mode?: BootMode | string }, opts: { id?: string; etag?: string; ifMatch?: boolean } = {}): Promise<void> {
    let path: string;
    let etag = opts.etag;
    if (opts.ifMatch && !etag) {
      const s = await this.system(opts.id);
      path = s.path;
      etag = s.etag;
    } else {
      path = await this.systemPath(opts.id);
    }
    const b: Obj = {};
    if (boot.target !== undefined) b.BootSourceOverrideTarget = boot.target;
    if (boot.enabled !== undefined) b.BootSourceOverrideEnabled = boot.enabled;
    if (boot.mode !== undefined) b.BootSourceOverrideMode = boot.mode;
    await this.request('PATCH', path, { Boot: b }, etag ? { 'If-Match': etag } : {});
  }

  async ethernetMacs(id?: string): Promise<string[]> {
    const s = await this.system(id);
    if (!s.ethernetInterfaces) return [];
    const out: string[] = [];
    for (const p of await this.collection(s.ethernetInterfaces)) {
      const { body } = await this.getObj(p);
      if (typeof body.MACAddress === 'string') out.push(body.MACAddress.toLowerCase());
    }
    return out;
  }

  /** The virtual media devices of the managers of a system (or of every manager). */
  async virtualMedia(id?: string): Promise<VirtualMediaInfo[]> {
    let managers: string[] = [];
    if (id !== undefined || (await this.systems()).length === 1) {
      const s = await this.system(id);
      const links = isObj(s.raw.Links) ? s.raw.Links : {};
      managers = Array.isArray(links.ManagedBy) ? links.ManagedBy.map(odataId).filter((x): x is string => !!x) : [];
    }
    if (managers.length === 0) {
      const root = await this.serviceRoot();
      const p = odataId(root.Managers);
      if (!p) throw new RedfishError(`the service root of ${this.address} has no Managers collection.`, 'not_found');
      managers = await this.collection(p);
    }
    const out: VirtualMediaInfo[] = [];
    for (const m of managers) {
      const { body } = await this.getObj(m);
      const vmc = odataId(body.VirtualMedia);
      if (!vmc) continue;
      for (const p of await this.collection(vmc)) {
        const { body: v } = await this.getObj(p);
        const acts = isObj(v.Actions) ? v.Actions : {};
        const ins = isObj(acts['#VirtualMedia.InsertMedia']) && typeof acts['#VirtualMedia.InsertMedia'].target === 'string' ? acts['#VirtualMedia.InsertMedia'].target : undefined;
        const ej = isObj(acts['#VirtualMedia.EjectMedia']) && typeof acts['#VirtualMedia.EjectMedia'].target === 'string' ? acts['#VirtualMedia.EjectMedia'].target : undefined;
        out.push({
          path: odataId(v) ?? p,
          id: typeof v.Id === 'string' ? v.Id : p.split('/').pop()!,
          mediaTypes: strings(v.MediaTypes) ?? [],
          image: typeof v.Image === 'string' && v.Image ? v.Image : null,
          inserted: v.Inserted === true,
          insertTarget: ins as string | undefined,
          ejectTarget: ej as string | undefined,
        });
      }
    }
    return out;
  }

  private async pickMedia(type: string, id?: string): Promise<VirtualMediaInfo> {
    const all = await this.virtualMedia(id);
    const hit = all.find((m) => m.mediaTypes.includes(type)) ?? all.find((m) => m.id.toLowerCase() === type.toLowerCase());
    if (!hit) throw new RedfishError(`no virtual media device for ${type} on ${this.address} (found ${all.map((m) => m.id).join(', ') || 'none'}).`, 'not_found');
    return hit;
  }

  /** Insert an image (URL) in the virtual CD (or the device for `mediaType`). */
  async insertMedia(image: string, opts: { id?: string; mediaType?: string; inserted?: boolean; writeProtected?: boolean } = {}): Promise<void> {
    const m = await this.pickMedia(opts.mediaType ?? 'CD', opts.id);
    const target = m.insertTarget ?? `${m.path}/Actions/VirtualMedia.InsertMedia`;
    await this.request('POST', target, { Image: image, Inserted: opts.inserted ?? true, WriteProtected: opts.writeProtected ?? true });
  }

  async ejectMedia(opts: { id?: string; mediaType?: string } = {}): Promise<void> {
    const m = await this.pickMedia(opts.mediaType ?? 'CD', opts.id);
    const target = m.ejectTarget ?? `${m.path}/Actions/VirtualMedia.EjectMedia`;
    await this.request('POST', target, {});
  }

  /** How this client authenticates now (after the first request): session, basic or none. */
  get authMode(): 'session' | 'basic' | 'none' | undefined { return this.mode; }

  /** Delete the session (if any) and close the keep-alive connections. */
  async close(): Promise<void> {
    try {
      if (this.mode === 'session' && this.token && this.sessionUri) {
        await this.raw('DELETE', this.sessionUri, undefined, { 'X-Auth-Token': this.token }).catch(() => undefined);
      }
    } finally {
      this.mode = undefined;
      this.token = undefined;
      this.sessionUri = undefined;
      this.agent.destroy();
    }
  }
}
