/**
 * The seed's HTTP application: identity under /identity, bare metal under /baremetal, all on
 * one port, with the catalog pointing clients at each.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Db } from '../store/db.js';
import { Identity } from '../identity/identity.js';
import { HttpServer, Router } from './http.js';
import { authMiddleware } from './auth.js';
import { identityRoutes } from './identity/routes.js';
import { nodeRoutes } from './baremetal/nodes.js';
import { portRoutes } from './baremetal/ports.js';
import { resourceRoutes } from './baremetal/resources.js';
import { agentRoutes } from './baremetal/agent.js';
import { imageRoutes } from './image/routes.js';
import { Dispatcher } from './baremetal/dispatch.js';
import { BAREMETAL_PREFIX, versionHeaders } from './baremetal/common.js';
import { ConductorRing } from '../conductor/ring.js';
import { ipxeScriptHandler } from '../boot/http.js';
import { bootScriptFor } from '../drivers/ipxe.js';
import { logger } from '../util/log.js';
import '../drivers/compose.js';

const bootLog = logger('boot');

/**
 * iPXE scripts for network-booting machines (public: firmware cannot authenticate):
 * GET /boot.ipxe (what DHCP hands iPXE) chains GET /boot/<mac>.ipxe, made from the node's state
 * (src/drivers/ipxe.ts). The scripts carry agent tokens: never logged, never cached.
 */
function bootRoutes(router: Router, db: Db): void {
  const handler = ipxeScriptHandler({
    baseUrl: (req) => {
      const host = String(req.headers.host ?? '');
      if (!/^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host)) throw new Error(`bad Host header '${host.slice(0, 80)}'`);
      return `http://${host}`;
    },
    scriptFor: async (mac) => {
      const row = await db.get<{ driver_internal_info: string }>('SELECT n.driver_internal_info FROM ports p JOIN nodes n ON n.id = p.node_id WHERE p.address = ?', [mac]);
      return row ? bootScriptFor(JSON.parse(row.driver_internal_info) as Record<string, unknown>) : undefined;
    },
    log: (line) => bootLog.info(line),
  });
  const route = { style: 'plain' as const, public: true };
  const serve = (req: { raw: IncomingMessage }) => ({
    stream: async (res: ServerResponse) => {
      try {
        if (!(await handler(req.raw, res))) { res.statusCode = 404; res.end('not found\n'); }
      } catch (e) {
        if (!res.headersSent) { res.statusCode = 400; res.setHeader('Content-Type', 'text/plain'); res.end(`${(e as Error).message}\n`); } else res.destroy();
      }
    },
  });
  router.add(route, 'GET', '/boot.ipxe', serve);
  router.add(route, 'GET', '/boot/:file', serve);
}

export const IDENTITY_PREFIX = '/identity';

export interface ApiApp { server: HttpServer; identity: Identity; router: Router }

export function buildApi(db: Db, identity: Identity, publicUrl: () => string, deadAfterS?: number, dataDir?: string): ApiApp {
  const router = new Router();
  const ring = new ConductorRing(db, deadAfterS);
  const dispatcher = new Dispatcher(db, ring);
  router.styleFor(BAREMETAL_PREFIX, 'ironic');
  identityRoutes(router, identity, IDENTITY_PREFIX);
  resourceRoutes(router, db, ring);
  nodeRoutes(router, db, dispatcher, ring);
  portRoutes(router, db);
  agentRoutes(router, db, dispatcher);
  router.styleFor('/image', 'glance'); imageRoutes(router, db, publicUrl, dataDir);
  bootRoutes(router, db);
  router.add({ style: 'plain', public: true }, 'GET', '/', () => ({
    body: { name: 'ooo seed', services: { identity: `${publicUrl()}${IDENTITY_PREFIX}`, baremetal: `${publicUrl()}${BAREMETAL_PREFIX}` } },
  }));
  const server = new HttpServer({
    router,
    before: [authMiddleware(identity, () => `${publicUrl()}${IDENTITY_PREFIX}`)],
    decorate: (req, h) => { if (req.path.startsWith(BAREMETAL_PREFIX)) versionHeaders(req, h); },
  });
  return { server, identity, router };
}
