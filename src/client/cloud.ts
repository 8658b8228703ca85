/**
 * A client for the seed's APIs, configured the way the openstack client is: clouds.yaml
 * (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack) and
 * OS_CLOUD, or OS_AUTH_URL/OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME... It gets a token,
 * finds endpoints in the catalog, and turns error bodies into messages.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import YAML from 'yaml';

export interface CloudAuth {
  auth_url: string;
  username?: string;
  password?: string;
  project_name?: string;
  project_id?: string;
  user_domain_name?: string;
  project_domain_name?: string;
  system_scope?: string;
  token?: string;
}

export interface CloudConfig { name: string; auth: CloudAuth; region_name?: string; interface?: string }

export class ClientError extends Error {
  constructor(message: string, readonly status: number = 0) { super(message); }
}

function cloudsFiles(): string[] {
  const out: string[] = [];
  if (process.env.OS_CLIENT_CONFIG_FILE) out.push(process.env.OS_CLIENT_CONFIG_FILE);
  out.push(join(process.cwd(), 'clouds.yaml'), join(homedir(), '.config', 'openstack', 'clouds.yaml'), '/etc/openstack/clouds.yaml');
  return out;
}

/** The cloud to talk to: --os-cloud / OS_CLOUD from clouds.yaml, else OS_* variables. */
export function loadCloud(name?: string): CloudConfig {
  const cloudName = name ?? process.env.OS_CLOUD;
  if (cloudName) {
    for (const f of cloudsFiles()) {
      if (!existsSync(f)) continue;
      let doc: { clouds?: Record<string, { auth?: CloudAuth; region_name?: string; interface?: string }> };
      try { doc = YAML.parse(readFileSync(f, 'utf8')); } catch (e) { throw new ClientError(`${f} is not valid YAML: ${(e as Error).message}`); }
      const c = doc?.clouds?.[cloudName];
      if (c) {
        if (!c.auth?.auth_url) throw new ClientError(`cloud '${cloudName}' in ${f} has no auth.auth_url`);
        return { name: cloudName, auth: c.auth, region_name: c.region_name, interface: c.interface };
      }
    }
    throw new ClientError(`cloud '${cloudName}' was not found in ${cloudsFiles().filter(existsSync).join(', ') || 'any clouds.yaml'} (set OS_CLIENT_CONFIG_FILE to the seed's clouds.yaml)`);
  }
  const e = process.env;
  if (e.OS_AUTH_URL) {
    return {
      name: 'env', region_name: e.OS_REGION_NAME,
      auth: { auth_url: e.OS_AUTH_URL, username: e.OS_USERNAME, password: e.OS_PASSWORD, project_name: e.OS_PROJECT_NAME, project_id: e.OS_PROJECT_ID, user_domain_name: e.OS_USER_DOMAIN_NAME ?? 'Default', project_domain_name: e.OS_PROJECT_DOMAIN_NAME ?? 'Default', system_scope: e.OS_SYSTEM_SCOPE, token: e.OS_TOKEN },
    };
  }
  throw new ClientError("no cloud configured: set OS_CLOUD=ooo and OS_CLIENT_CONFIG_FILE=<data dir>/clouds.yaml (written by 'ooo seed up'), or the OS_AUTH_URL/OS_USERNAME/OS_PASSWORD variables");
}

export interface HttpResult { status: number; headers: http.IncomingHttpHeaders; body: unknown; text: string }

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export function request(method: string, url: string, opts: { headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try { u = new URL(url); } catch { reject(new ClientError(`invalid URL '${url}'`)); return; }
    if (u.protocol !== 'http:') { reject(new ClientError(`only http:// endpoints are supported by this client, got ${u.protocol}`)); return; }
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const req = http.request(u, {
      method, agent,
      headers: { Accept: 'application/json', ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}), ...opts.headers },
      timeout: opts.timeoutMs ?? 60_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = undefined;
        if (text) { try { body = JSON.parse(text); } catch { body = text; } }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new ClientError(`${method} ${u.origin}${u.pathname} timed out`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof ClientError) reject(e);
      else reject(new ClientError(e.code === 'ECONNREFUSED' ? `cannot reach ${u.origin}: connection refused (is the seed running? 'ooo seed up')` : `cannot reach ${u.origin}: ${e.message}`));
    });
    req.end(payload);
  });
}

/** The message inside an OpenStack error body (Ironic's nested JSON string, Keystone's error.message, ...). */
export function errorMessage(r: HttpResult): string {
  const b = r.body as Record<string, unknown> | string | undefined;
  if (b && typeof b === 'object') {
    if (typeof b.error_message === 'string') {
      try { const inner = JSON.parse(b.error_message) as { faultstring?: string }; if (inner.faultstring) return inner.faultstring; } catch { return b.error_message; }
    }
    const e = b.error as { message?: string } | undefined;
    if (e?.message) return e.message;
    if (typeof b.message === 'string') return b.message;
  }
  return typeof b === 'string' && b ? b.slice(0, 300) : `HTTP ${r.status}`;
}

interface CatalogEntry { type: string; endpoints: { interface: string; region_id?: string; region?: string; url: string }[] }

export class Cloud {
  private token?: string;
  private catalog: CatalogEntry[] = [];
  constructor(readonly config: CloudConfig) {}

  async authenticate(): Promise<void> {
    const a = this.config.auth;
    const base = a.auth_url.replace(/\/+$/, '');
    const url = base.endsWith('/v3') ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
    const identity = a.token
      ? { methods: ['token'], token: { id: a.token } }
      : { methods: ['password'], password: { user: { name: a.username, password: a.password, domain: { name: a.user_domain_name ?? 'Default' } } } };
    const scope = a.system_scope ? { system: { all: true } }
      : a.project_id ? { project: { id: a.project_id } }
      : a.project_name ? { project: { name: a.project_name, domain: { name: a.project_domain_name ?? 'Default' } } } : undefined;
    const r = await request('POST', url, { body: { auth: { identity, ...(scope ? { scope } : {}) } } });
    if (r.status !== 201) throw new ClientError(`authentication at ${a.auth_url} failed: ${errorMessage(r)}`, r.status);
    this.token = String(r.headers['x-subject-token']);
    this.catalog = ((r.body as { token?: { catalog?: CatalogEntry[] } }).token?.catalog) ?? [];
  }

  endpoint(type: string): string {
    const iface = this.config.interface ?? 'public';
    const svc = this.catalog.find((c) => c.type === type);
    const ep = svc?.endpoints.find((e) => e.interface === iface && (!this.config.region_name || (e.region_id ?? e.region) === this.config.region_name)) ?? svc?.endpoints[0];
    if (!ep) throw new ClientError(`the cloud's catalog has no ${type} endpoint`);
    return ep.url.replace(/\/+$/, '');
  }

  /** The token and a service's endpoint, for requests that stream their body or response (image data). */
  async session(service: string): Promise<{ token: string; url: string }> {
    if (!this.token) await this.authenticate();
    return { token: this.token!, url: this.endpoint(service) };
  }

  /** Calls an API of the cloud; throws ClientError with the server's message on 4xx/5xx. */
  async call(service: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
    if (!this.token) await this.authenticate();
    const h: Record<string, string> = { 'X-Auth-Token': this.token!, ...headers };
    if (service === 'baremetal') h['X-OpenStack-Ironic-API-Version'] = 'latest';
    let r = await request(method, `${this.endpoint(service)}${path}`, { headers: h, body });
    if (r.status === 401) {
      await this.authenticate();
      r = await request(method, `${this.endpoint(service)}${path}`, { headers: { ...h, 'X-Auth-Token': this.token! }, body });
    }
    if (r.status >= 400) throw new ClientError(errorMessage(r), r.status);
    return r;
  }

  async baremetal<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.call('baremetal', method, path, body)).body as T;
  }
}
