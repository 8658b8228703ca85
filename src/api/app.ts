/**
 * The seed's HTTP application: identity under /identity, bare metal under /baremetal, all on
 * one port, with the catalog pointing clients at each.
 */
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
import '../drivers/compose.js';

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
