/**
 * Authentication for every API: the X-Auth-Token header is validated against identity and
 * becomes req.auth. Policy helpers answer "may this caller do X" in one place.
 */
import { AuthError, Identity, TokenData } from '../identity/identity.js';
import { ApiError, Middleware, Request, forbidden } from './http.js';

export interface AuthContext {
  token: TokenData;
  roles: Set<string>;
  system: boolean;
  projectId?: string;
  /** admin anywhere (project or system scope), as Ironic's legacy policy allows. */
  admin: boolean;
}

export function authMiddleware(identity: Identity, authUrl: () => string): Middleware {
  return async (req: Request) => {
    const token = req.headers['x-auth-token'];
    if (typeof token !== 'string' || !token) {
      throw new ApiError(401, 'The request you have made requires authentication.', { 'WWW-Authenticate': `Keystone uri="${authUrl()}"` });
    }
    try {
      const t = await identity.validate(token);
      const roles = new Set(t.r.map(([, name]) => name));
      req.auth = { token: t, roles, system: t.s === 1, projectId: t.p, admin: roles.has('admin') } satisfies AuthContext;
    } catch (e) {
      if (e instanceof AuthError) throw new ApiError(401, e.message, { 'WWW-Authenticate': `Keystone uri="${authUrl()}"` });
      throw e;
    }
  };
}

export function authOf(req: Request): AuthContext {
  if (!req.auth) throw new ApiError(401, 'The request you have made requires authentication.');
  return req.auth as AuthContext;
}

export function requireAdmin(req: Request): AuthContext {
  const a = authOf(req);
  if (!a.admin) throw forbidden();
  return a;
}

/** Writes need member (or admin); readers may only read. */
export function requireWriter(req: Request): AuthContext {
  const a = authOf(req);
  if (!a.admin && !a.roles.has('member')) throw forbidden();
  return a;
}
