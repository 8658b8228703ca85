/**
 * The HTTP layer every API shares: a small router over node:http, JSON bodies with a size
 * limit, and errors rendered in the body shape of the API that raised them (Ironic, Keystone,
 * Glance each have their own). No framework: the hot paths stay short and the wire stays exact.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../util/log.js';

const log = logger('api');

export type ErrorStyle = 'ironic' | 'keystone' | 'glance' | 'plain';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) { super(message); }
}
export const badRequest = (m: string) => new ApiError(400, m);
export const notFound = (m: string) => new ApiError(404, m);
export const conflict = (m: string) => new ApiError(409, m);
export const forbidden = (m = 'Access was denied to this resource.') => new ApiError(403, m);
export const unauthorized = (m = 'The request you have made requires authentication.') => new ApiError(401, m);

export interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  params: Record<string, string>;
  /** The raw request, for handlers that stream the body (image upload). */
  raw: http.IncomingMessage;
  /** Parsed JSON body (undefined when there is none). Filled before the handler runs unless the route streams. */
  body: unknown;
  /** Set by the auth layer. */
  auth?: unknown;
  /** Base URL the client used (scheme://host[:port]), for links. */
  baseUrl: string;
  remoteAddress: string;
}

export interface Response {
  status?: number;
  body?: unknown;
  headers?: Record<string, string | number | string[]>;
  /** A stream handler writes the response itself. */
  stream?: (res: http.ServerResponse) => Promise<void> | void;
}

export type Handler = (req: Request) => Promise<Response> | Response;
export type Middleware = (req: Request, route: RouteInfo) => Promise<Record<string, string> | void> | Record<string, string> | void;

export interface RouteInfo {
  method: string;
  pattern: string;
  style: ErrorStyle;
  /** Do not read/parse the body before the handler (it streams). */
  streamBody?: boolean;
  /** No authentication needed. */
  public?: boolean;
  /** Extra data for middleware (e.g. required role). */
  meta?: Record<string, unknown>;
}

interface Route extends RouteInfo { segments: string[]; handler: Handler; mw: Middleware[] }

const MAX_JSON = 4 * 1024 * 1024;

export class Router {
  private readonly byMethod = new Map<string, Route[]>();
  private readonly prefixStyles: [string, ErrorStyle][] = [];

  /** Unmatched paths under `prefix` get errors in `style`. */
  styleFor(prefix: string, style: ErrorStyle): void {
    this.prefixStyles.push([prefix, style]);
    this.prefixStyles.sort((a, b) => b[0].length - a[0].length);
  }

  add(info: Omit<RouteInfo, 'method' | 'pattern'> & { mw?: Middleware[] }, method: string, pattern: string, handler: Handler): void {
    const route: Route = { ...info, method, pattern, segments: split(pattern), handler, mw: info.mw ?? [] };
    let list = this.byMethod.get(method);
    if (!list) this.byMethod.set(method, (list = []));
    list.push(route);
    // Literal segments before parameters, so /nodes/detail beats /nodes/:id.
    list.sort((a, b) => score(b) - score(a));
  }

  match(method: string, path: string): { route?: Route; params: Record<string, string>; allowed: string[] } {
    const segs = split(path);
    const params: Record<string, string> = {};
    const tryList = (list: Route[] | undefined) => {
      for (const r of list ?? []) {
        if (r.segments.length !== segs.length) continue;
        let ok = true;
        for (let i = 0; i < segs.length; i++) {
          const p = r.segments[i]!;
          if (p.startsWith(':')) params[p.slice(1)] = segs[i]!;
          else if (p !== segs[i]) { ok = false; break; }
        }
        if (ok) return r;
      }
      return undefined;
    };
    const route = tryList(this.byMethod.get(method === 'HEAD' ? 'HEAD' : method)) ?? (method === 'HEAD' ? tryList(this.byMethod.get('GET')) : undefined);
    if (route) return { route, params, allowed: [] };
    const allowed: string[] = [];
    for (const [m, list] of this.byMethod) if (tryList(list)) allowed.push(m);
    return { params: {}, allowed };
  }

  styleOf(path: string): ErrorStyle {
    for (const [prefix, style] of this.prefixStyles) if (path.startsWith(prefix)) return style;
    return 'plain';
  }
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0).map((s) => { try { return decodeURIComponent(s); } catch { return s; } });
}
function score(r: Route): number {
  return r.segments.reduce((acc, s, i) => acc + (s.startsWith(':') ? 0 : 1 << (20 - i)), 0);
}

/** The error body each API family uses on the wire. */
export function errorBody(style: ErrorStyle, status: number, message: string): unknown {
  const title = http.STATUS_CODES[status] ?? 'Error';
  switch (style) {
    case 'ironic':
      return { error_message: JSON.stringify({ faultcode: status >= 500 ? 'Server' : 'Client', faultstring: message, debuginfo: null }) };
    case 'keystone':
      return { error: { code: status, message, title } };
    case 'glance':
      return { code: `${status} ${title}`, title, message };
    default:
      return { error: { code: status, message } };
  }
}

export function readBody(req: http.IncomingMessage, limit = MAX_JSON): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new ApiError(413, `Request body is larger than the limit of ${limit} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export interface HttpServerOptions {
  router: Router;
  /** Runs before every handler of a non-public route (authentication). */
  before?: Middleware[];
  /** Headers added to every response (e.g. version headers), by path prefix. */
  decorate?: (req: Request, headers: Record<string, string | number | string[]>) => void;
}

export class HttpServer {
  readonly server: http.Server;
  constructor(private readonly opts: HttpServerOptions) {
    this.server = http.createServer({ keepAlive: true }, (req, res) => { void this.handle(req, res); });
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  private readonly extra: http.Server[] = [];

  /** Serve the same application on one more address (e.g. the provisioning network's). */
  listenAlso(port: number, host: string): Promise<AddressInfo> {
    const s = http.createServer({ keepAlive: true }, (req, res) => { void this.handle(req, res); });
    s.keepAliveTimeout = this.server.keepAliveTimeout;
    s.headersTimeout = this.server.headersTimeout;
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => { s.off('error', reject); this.extra.push(s); resolve(s.address() as AddressInfo); });
    });
  }

  close(): Promise<void> {
    return Promise.all([this.server, ...this.extra].map((s) => new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
      setTimeout(() => s.closeAllConnections(), 2000).unref();
    }))).then(() => undefined);
  }

  private async handle(raw: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = raw.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const host = raw.headers.host ?? 'localhost';
    const req: Request = {
      method: raw.method ?? 'GET',
      path,
      query: new URLSearchParams(q >= 0 ? url.slice(q + 1) : ''),
      headers: raw.headers,
      params: {},
      raw,
      body: undefined,
      baseUrl: `${(raw.headers['x-forwarded-proto'] as string) ?? 'http'}://${host}`,
      remoteAddress: raw.socket.remoteAddress ?? '',
    };
    const { router } = this.opts;
    const found = router.match(req.method, path);
    const style = found.route?.style ?? router.styleOf(path);
    const headers: Record<string, string | number | string[]> = {};
    try {
      this.opts.decorate?.(req, headers);
      const route = found.route;
      if (!route) {
        if (found.allowed.length) throw new ApiError(405, `The method ${req.method} is not allowed for this resource.`, { Allow: found.allowed.join(', ') });
        throw notFound(`The resource could not be found.`);
      }
      req.params = found.params;
      if (!route.public) for (const mw of this.opts.before ?? []) { const h = await mw(req, route); if (h) Object.assign(headers, h); }
      for (const mw of route.mw) { const h = await mw(req, route); if (h) Object.assign(headers, h); }
      if (!route.streamBody && req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'DELETE') {
        const buf = await readBody(raw);
        if (buf.length > 0) {
          try { req.body = JSON.parse(buf.toString('utf8')); } catch (e) {
            throw badRequest(`The request body is not valid JSON: ${(e as Error).message}`);
          }
        }
      } else if (!route.streamBody && (req.method === 'DELETE')) {
        await readBody(raw).catch(() => undefined);
      }
      const out = await route.handler(req);
      Object.assign(headers, out.headers ?? {});
      if (out.stream) {
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
        res.statusCode = out.status ?? 200;
        await out.stream(res);
        return;
      }
      this.send(res, req.method, out.status ?? (out.body === undefined ? 204 : 200), out.body, headers);
    } catch (e) {
      const err = e instanceof ApiError ? e : undefined;
      const status = err?.status ?? 500;
      if (!err) log.error('unhandled error', { method: req.method, path, error: (e as Error)?.stack ?? String(e) });
      const message = err?.message ?? 'An internal error occurred; see the service log.';
      Object.assign(headers, err?.headers ?? {});
      if (!raw.complete) raw.resume();
      if (res.headersSent) { res.destroy(); return; }
      this.send(res, req.method, status, errorBody(style, status, message), headers);
    }
  }

  private send(res: http.ServerResponse, method: string, status: number, body: unknown, headers: Record<string, string | number | string[]>): void {
    let payload: Buffer | undefined;
    if (body !== undefined && status !== 204 && status !== 304) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      if (!headers['Content-Type'] && !headers['content-type']) headers['Content-Type'] = typeof body === 'string' ? 'text/plain; charset=UTF-8' : 'application/json';
      headers['Content-Length'] = payload.length;
    } else if (status !== 204 && status !== 304) {
      headers['Content-Length'] = 0;
    }
    res.writeHead(status, headers as http.OutgoingHttpHeaders);
    res.end(method === 'HEAD' ? undefined : payload);
  }
}
