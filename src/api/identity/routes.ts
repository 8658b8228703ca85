/**
 * Identity v3 (Keystone-compatible subset): version discovery, tokens (password and token
 * methods; project, system and unscoped), users, projects, domains, roles, role assignments,
 * and the catalog. Mounted under a prefix (default /identity) as devstack does.
 */
import { AuthError, AuthRequest, DEFAULT_DOMAIN, DomainRow, Identity, ProjectRow, RoleRow, TokenData, UserRow } from '../../identity/identity.js';

import { ApiError, Request, Router, badRequest, conflict, forbidden, notFound } from '../http.js';
import { authOf, requireAdmin } from '../auth.js';

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw badRequest(`Expecting to find ${what} in request body.`);
  return v as Obj;
}
function optStr(o: Obj, k: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`Invalid input for field '${k}': expected a string.`);
  return v;
}
function name(o: Obj, k = 'name'): string {
  const v = optStr(o, k);
  if (!v || !v.trim()) throw badRequest(`Invalid input for field '${k}': it is required and must be a non-empty string.`);
  if (v.length > 255) throw badRequest(`Invalid input for field '${k}': longer than 255 characters.`);
  return v;
}
function optBool(o: Obj, k: string): boolean | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`Invalid input for field '${k}': expected a boolean.`);
  return v;
}

export function identityRoutes(router: Router, identity: Identity, prefix = '/identity'): void {
  const db = identity.db;
  const style = { style: 'keystone' as const };
  const pub = { style: 'keystone' as const, public: true };
  router.styleFor(prefix, 'keystone');
  const base = (req: Request) => `${req.baseUrl}${prefix}`;
  const link = (req: Request, path: string) => ({ self: `${base(req)}/v3/${path}` });

  const versionV3 = (req: Request) => ({
    id: 'v3.14', status: 'stable', updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${base(req)}/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  });
  router.add(pub, 'GET', prefix, (req) => ({ status: 300, body: { versions: { values: [versionV3(req)] } } }));
  router.add(pub, 'GET', `${prefix}/v3`, (req) => ({ body: { version: versionV3(req) } }));

  const renderUser = (req: Request, u: UserRow) => ({
    id: u.id, name: u.name, domain_id: u.domain_id, enabled: !!u.enabled, default_project_id: u.default_project_id ?? undefined,
    email: u.email ?? undefined, description: u.description ?? undefined, password_expires_at: u.password_expires_at, options: JSON.parse(u.options), links: link(req, `users/${u.id}`),
  });
  const renderProject = (req: Request, p: ProjectRow) => ({
    id: p.id, name: p.name, domain_id: p.domain_id, description: p.description, enabled: !!p.enabled, parent_id: p.parent_id ?? p.domain_id,
    is_domain: false, tags: JSON.parse(p.tags), options: {}, links: link(req, `projects/${p.id}`),
  });
  const renderRole = (req: Request, r: RoleRow) => ({ id: r.id, name: r.name, description: r.description || null, domain_id: null, options: {}, links: link(req, `roles/${r.id}`) });
  const renderDomain = (req: Request, d: DomainRow) => ({ id: d.id, name: d.name, description: d.description, enabled: !!d.enabled, tags: [], options: {}, links: link(req, `domains/${d.id}`) });
  const collectionLinks = (req: Request, path: string) => ({ self: `${base(req)}/v3/${path}`, previous: null, next: null });

  // ---- tokens ----
  const tokenBody = async (req: Request, t: TokenData, withCatalog: boolean) => {
    const user = await db.get<UserRow>('SELECT * FROM users WHERE id = ?', [t.u]);
    const domain = await db.get<DomainRow>('SELECT * FROM domains WHERE id = ?', [t.ud]);
    const token: Obj = {
      methods: t.m,
      user: { id: t.u, name: t.un, domain: { id: t.ud, name: domain?.name ?? t.ud }, password_expires_at: user?.password_expires_at ?? null },
      audit_ids: [t.a],
      expires_at: new Date(t.e).toISOString().replace(/Z$/, '000Z'),
      issued_at: new Date(t.i).toISOString().replace(/Z$/, '000Z'),
    };
    if (t.p) {
      const pd = await db.get<DomainRow>('SELECT * FROM domains WHERE id = ?', [t.pd]);
      token.project = { id: t.p, name: t.pn, domain: { id: t.pd, name: pd?.name ?? t.pd } };
      token.is_domain = false;
    }
    if (t.s) token.system = { all: true };
    if (t.p || t.s) {
      token.roles = t.r.map(([id, n]) => ({ id, name: n }));
      if (withCatalog) token.catalog = await identity.catalog();
    }
    return { token };
  };

  router.add(pub, 'POST', `${prefix}/v3/auth/tokens`, async (req) => {
    const auth = obj(obj(req.body, 'auth').auth, 'auth');
    const idn = obj(auth.identity, 'identity');
    const methods = idn.methods;
    if (!Array.isArray(methods) || methods.length === 0) throw badRequest('Expecting to find methods in identity.');
    const ar: AuthRequest = {};
    if (methods.includes('password')) {
      const pu = obj(obj(idn.password, 'password').user, 'user');
      const password = pu.password;
      if (typeof password !== 'string') throw badRequest('Expecting to find password in user.');
      const dom = pu.domain && typeof pu.domain === 'object' ? (pu.domain as Obj) : {};
      ar.password = { userId: optStr(pu, 'id'), userName: optStr(pu, 'name'), domainId: optStr(dom, 'id'), domainName: optStr(dom, 'name'), password };
      if (!ar.password.userId && !ar.password.userName) throw badRequest('Expecting to find id or name in user.');
    } else if (methods.includes('token')) {
      const tok = obj(idn.token, 'token');
      const id = optStr(tok, 'id');
      if (!id) throw badRequest('Expecting to find id in token.');
      ar.token = id;
    } else {
      throw new ApiError(401, `Unsupported authentication method(s): ${methods.join(', ')}.`);
    }
    if (auth.scope !== undefined && auth.scope !== 'unscoped') {
      const sc = obj(auth.scope, 'scope');
      if (sc.system) {
        ar.scope = { system: true };
      } else if (sc.project) {
        const p = obj(sc.project, 'project');
        const dom = p.domain && typeof p.domain === 'object' ? (p.domain as Obj) : {};
        ar.scope = { projectId: optStr(p, 'id'), projectName: optStr(p, 'name'), domainId: optStr(dom, 'id'), domainName: optStr(dom, 'name') };
      } else if (sc.domain) {
        throw badRequest('Domain-scoped tokens are not supported; scope to a project or to the system.');
      }
    } else if (auth.scope === 'unscoped') {
      ar.scope = {};
    }
    try {
      const { token, data } = await identity.authenticate(ar);
      const nocatalog = req.query.has('nocatalog');
      return { status: 201, headers: { 'X-Subject-Token': token }, body: await tokenBody(req, data, !nocatalog) };
    } catch (e) {
      if (e instanceof AuthError) throw new ApiError(e.status, e.message);
      throw e;
    }
  });

  const subject = async (req: Request): Promise<TokenData> => {
    const s = req.headers['x-subject-token'];
    if (typeof s !== 'string' || !s) throw badRequest('Expecting to find X-Subject-Token header.');
    try { return await identity.validate(s); } catch (e) {
      if (e instanceof AuthError) throw notFound(`Could not find token: ${s.slice(0, 12)}...`);
      throw e;
    }
  };
  const mayInspect = (req: Request, t: TokenData) => {
    const a = authOf(req);
    if (!a.admin && !a.roles.has('reader') && a.token.u !== t.u) throw forbidden();
  };
  router.add(style, 'GET', `${prefix}/v3/auth/tokens`, async (req) => {
    const t = await subject(req);
    mayInspect(req, t);
    return { headers: { 'X-Subject-Token': req.headers['x-subject-token'] as string }, body: await tokenBody(req, t, !req.query.has('nocatalog')) };
  });
  router.add(style, 'HEAD', `${prefix}/v3/auth/tokens`, async (req) => {
    const t = await subject(req);
    mayInspect(req, t);
    return { status: 200, headers: { 'X-Subject-Token': req.headers['x-subject-token'] as string } };
  });
  router.add(style, 'DELETE', `${prefix}/v3/auth/tokens`, async (req) => {
    const t = await subject(req);
    const a = authOf(req);
    if (!a.admin && a.token.u !== t.u) throw forbidden();
    await identity.revoke(t.a, t.e);
    return { status: 204 };
  });
  router.add(style, 'GET', `${prefix}/v3/auth/catalog`, async (req) => ({ body: { catalog: await identity.catalog(), links: collectionLinks(req, 'auth/catalog') } }));
  router.add(style, 'GET', `${prefix}/v3/auth/projects`, async (req) => {
    const a = authOf(req);
    const rows = await db.all<ProjectRow>("SELECT DISTINCT p.* FROM projects p JOIN role_assignments a ON a.target_type = 'project' AND a.target_id = p.id WHERE a.actor_id = ? ORDER BY p.name", [a.token.u]);
    return { body: { projects: rows.map((p) => renderProject(req, p)), links: collectionLinks(req, 'auth/projects') } };
  });
  router.add(style, 'GET', `${prefix}/v3/auth/system`, async (req) => {
    const a = authOf(req);
    const has = (await identity.rolesOn(a.token.u, 'system', 'all')).length > 0;
    return { body: { system: has ? [{ all: true }] : [], links: collectionLinks(req, 'auth/system') } };
  });
  router.add(style, 'GET', `${prefix}/v3/auth/domains`, async (req) => ({ body: { domains: [], links: collectionLinks(req, 'auth/domains') } }));

  // ---- lookups by id or (for the client's fallback) by name ----
  const getUser = async (id: string) => {
    const u = await db.get<UserRow>('SELECT * FROM users WHERE id = ?', [id]);
    if (!u) throw notFound(`Could not find user: ${id}.`);
    return u;
  };
  const getProject = async (id: string) => {
    const p = await db.get<ProjectRow>('SELECT * FROM projects WHERE id = ?', [id]);
    if (!p) throw notFound(`Could not find project: ${id}.`);
    return p;
  };
  const getRole = async (id: string) => {
    const r = await db.get<RoleRow>('SELECT * FROM roles WHERE id = ?', [id]);
    if (!r) throw notFound(`Could not find role: ${id}.`);
    return r;
  };

  /** ?name= and ?domain_id= filters shared by the user and project lists. */
  const nameDomainFilter = (req: Request) => {
    const where: string[] = [];
    const vals: unknown[] = [];
    for (const k of ['name', 'domain_id']) { const v = req.query.get(k); if (v) { where.push(`${k} = ?`); vals.push(v); } }
    return { where, vals };
  };
  /** The domain a new user or project goes into (checked to exist). */
  const domainOf = async (o: Obj) => {
    const domainId = optStr(o, 'domain_id') ?? DEFAULT_DOMAIN;
    if (!(await db.get('SELECT id FROM domains WHERE id = ?', [domainId]))) throw badRequest(`Could not find domain: ${domainId}.`);
    return domainId;
  };

  // ---- users ----
  router.add(style, 'GET', `${prefix}/v3/users`, async (req) => {
    const a = authOf(req);
    const { where, vals } = nameDomainFilter(req);
    if (!a.admin && !a.roles.has('reader')) { where.push('id = ?'); vals.push(a.token.u); }
    const rows = await db.all<UserRow>(`SELECT * FROM users${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY name`, vals);
    return { body: { users: rows.map((u) => renderUser(req, u)), links: collectionLinks(req, 'users') } };
  });
  router.add(style, 'POST', `${prefix}/v3/users`, async (req) => {
    requireAdmin(req);
    const u = obj(obj(req.body, 'user').user, 'user');
    const domainId = await domainOf(u);
    const uname = name(u);
    if (await db.get('SELECT id FROM users WHERE name = ? AND domain_id = ?', [uname, domainId])) throw conflict(`Conflict occurred attempting to store user - Duplicate entry found with name ${uname} at domain ID ${domainId}.`);
    const dp = optStr(u, 'default_project_id');
    if (dp) await getProject(dp);
    const row = await identity.createUser({ name: uname, password: optStr(u, 'password'), domain_id: domainId, default_project_id: dp, email: optStr(u, 'email'), description: optStr(u, 'description'), enabled: optBool(u, 'enabled') });
    return { status: 201, body: { user: renderUser(req, row) } };
  });
  router.add(style, 'GET', `${prefix}/v3/users/:id`, async (req) => {
    const a = authOf(req);
    if (!a.admin && !a.roles.has('reader') && a.token.u !== req.params.id) throw forbidden();
    return { body: { user: renderUser(req, await getUser(req.params.id!)) } };
  });
  router.add(style, 'PATCH', `${prefix}/v3/users/:id`, async (req) => {
    requireAdmin(req);
    await getUser(req.params.id!);
    const u = obj(obj(req.body, 'user').user, 'user');
    await identity.updateUser(req.params.id!, { name: optStr(u, 'name'), password: optStr(u, 'password'), enabled: optBool(u, 'enabled'), default_project_id: optStr(u, 'default_project_id'), email: optStr(u, 'email'), description: optStr(u, 'description') });
    return { body: { user: renderUser(req, await getUser(req.params.id!)) } };
  });
  router.add(style, 'DELETE', `${prefix}/v3/users/:id`, async (req) => {
    requireAdmin(req);
    await getUser(req.params.id!);
    await identity.deleteUser(req.params.id!);
    return { status: 204 };
  });
  router.add(style, 'POST', `${prefix}/v3/users/:id/password`, async (req) => {
    const a = authOf(req);
    if (a.token.u !== req.params.id) throw forbidden('You can only change your own password.');
    const u = obj(obj(req.body, 'user').user, 'user');
    const orig = optStr(u, 'original_password');
    const next = optStr(u, 'password');
    if (!orig || !next) throw badRequest('Expecting to find original_password and password in user.');
    const row = await getUser(req.params.id!);
    const { verifyPassword } = await import('../../identity/passwords.js');
    if (!(await verifyPassword(orig, row.password_hash))) throw new ApiError(401, 'The request you have made requires authentication.');
    await identity.updateUser(row.id, { password: next });
    return { status: 204 };
  });
  router.add(style, 'GET', `${prefix}/v3/users/:id/projects`, async (req) => {
    const a = authOf(req);
    if (!a.admin && a.token.u !== req.params.id) throw forbidden();
    const rows = await db.all<ProjectRow>("SELECT DISTINCT p.* FROM projects p JOIN role_assignments a ON a.target_type = 'project' AND a.target_id = p.id WHERE a.actor_id = ? ORDER BY p.name", [req.params.id]);
    return { body: { projects: rows.map((p) => renderProject(req, p)), links: collectionLinks(req, `users/${req.params.id}/projects`) } };
  });

  // ---- projects ----
  router.add(style, 'GET', `${prefix}/v3/projects`, async (req) => {
    const a = authOf(req);
    const { where, vals } = nameDomainFilter(req);
    if (!a.admin && !a.roles.has('reader')) { where.push("id IN (SELECT target_id FROM role_assignments WHERE target_type = 'project' AND actor_id = ?)"); vals.push(a.token.u); }
    const rows = await db.all<ProjectRow>(`SELECT * FROM projects${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY name`, vals);
    return { body: { projects: rows.map((p) => renderProject(req, p)), links: collectionLinks(req, 'projects') } };
  });
  router.add(style, 'POST', `${prefix}/v3/projects`, async (req) => {
    requireAdmin(req);
    const p = obj(obj(req.body, 'project').project, 'project');
    const domainId = await domainOf(p);
    const pname = name(p);
    if (await db.get('SELECT id FROM projects WHERE name = ? AND domain_id = ?', [pname, domainId])) throw conflict(`Conflict occurred attempting to store project - it is not permitted to have two projects with the same name in the same domain : ${pname}.`);
    const tags = p.tags;
    if (tags !== undefined && (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string'))) throw badRequest("Invalid input for field 'tags': expected a list of strings.");
    const row = await identity.createProject({ name: pname, domain_id: domainId, description: optStr(p, 'description'), enabled: optBool(p, 'enabled'), tags: tags as string[] | undefined });
    return { status: 201, body: { project: renderProject(req, row) } };
  });
  router.add(style, 'GET', `${prefix}/v3/projects/:id`, async (req) => {
    const a = authOf(req);
    const p = await getProject(req.params.id!);
    if (!a.admin && !a.roles.has('reader') && a.projectId !== p.id) throw forbidden();
    return { body: { project: renderProject(req, p) } };
  });
  router.add(style, 'PATCH', `${prefix}/v3/projects/:id`, async (req) => {
    requireAdmin(req);
    await getProject(req.params.id!);
    const p = obj(obj(req.body, 'project').project, 'project');
    await identity.updateProject(req.params.id!, { name: optStr(p, 'name'), description: optStr(p, 'description'), enabled: optBool(p, 'enabled') });
    return { body: { project: renderProject(req, await getProject(req.params.id!)) } };
  });
  router.add(style, 'DELETE', `${prefix}/v3/projects/:id`, async (req) => {
    requireAdmin(req);
    await getProject(req.params.id!);
    await identity.deleteProject(req.params.id!);
    return { status: 204 };
  });

  // ---- domains (read-only: one Default domain, plus any created) ----
  router.add(style, 'GET', `${prefix}/v3/domains`, async (req) => {
    const n = req.query.get('name');
    const rows = await db.all<DomainRow>(`SELECT * FROM domains${n ? ' WHERE name = ?' : ''} ORDER BY name`, n ? [n] : []);
    return { body: { domains: rows.map((d) => renderDomain(req, d)), links: collectionLinks(req, 'domains') } };
  });
  router.add(style, 'GET', `${prefix}/v3/domains/:id`, async (req) => {
    const d = await db.get<DomainRow>('SELECT * FROM domains WHERE id = ?', [req.params.id]);
    if (!d) throw notFound(`Could not find domain: ${req.params.id}.`);
    return { body: { domain: renderDomain(req, d) } };
  });

  // ---- roles ----
  router.add(style, 'GET', `${prefix}/v3/roles`, async (req) => {
    const n = req.query.get('name');
    const rows = await db.all<RoleRow>(`SELECT * FROM roles${n ? ' WHERE name = ?' : ''} ORDER BY name`, n ? [n] : []);
    return { body: { roles: rows.map((r) => renderRole(req, r)), links: collectionLinks(req, 'roles') } };
  });
  router.add(style, 'POST', `${prefix}/v3/roles`, async (req) => {
    requireAdmin(req);
    const r = obj(obj(req.body, 'role').role, 'role');
    const rname = name(r);
    if (await identity.roleByName(rname)) throw conflict(`Conflict occurred attempting to store role - Duplicate entry found with name ${rname}.`);
    const { hexId } = await import('../../util/ids.js');
    const row: RoleRow = { id: hexId(), name: rname, description: optStr(r, 'description') ?? '' };
    await db.run('INSERT INTO roles (id, name, description) VALUES (?, ?, ?)', [row.id, row.name, row.description]);
    return { status: 201, body: { role: renderRole(req, row) } };
  });
  router.add(style, 'GET', `${prefix}/v3/roles/:id`, async (req) => ({ body: { role: renderRole(req, await getRole(req.params.id!)) } }));
  router.add(style, 'DELETE', `${prefix}/v3/roles/:id`, async (req) => {
    requireAdmin(req);
    const r = await getRole(req.params.id!);
    if ((['admin', 'member', 'reader'] as string[]).includes(r.name)) throw forbidden(`The built-in role '${r.name}' cannot be deleted.`);
    await db.run('DELETE FROM roles WHERE id = ?', [r.id]);
    return { status: 204 };
  });

  // ---- role assignments ----
  const assignment = (target: 'project' | 'system') => async (req: Request, op: 'PUT' | 'HEAD' | 'DELETE') => {
    requireAdmin(req);
    const targetId = target === 'project' ? (await getProject(req.params.target!)).id : 'all';
    const user = await getUser(req.params.user!);
    const role = await getRole(req.params.role!);
    if (op === 'PUT') { await identity.assignRole(user.id, target, targetId, role.id); return { status: 204 }; }
    const has = await db.get('SELECT role_id FROM role_assignments WHERE actor_id = ? AND target_type = ? AND target_id = ? AND role_id = ?', [user.id, target, targetId, role.id]);
    if (op === 'HEAD') { if (!has) throw notFound(`Could not find role assignment.`); return { status: 204 }; }
    if (!(await identity.unassignRole(user.id, target, targetId, role.id))) throw notFound(`Could not find role assignment with role: ${role.id}, user or group: ${user.id}, project, domain, or system: ${targetId}.`);
    return { status: 204 };
  };
  const onProject = assignment('project');
  const onSystem = assignment('system');
  for (const op of ['PUT', 'HEAD', 'DELETE'] as const) {
    router.add(style, op, `${prefix}/v3/projects/:target/users/:user/roles/:role`, (req) => onProject(req, op));
    router.add(style, op, `${prefix}/v3/system/users/:user/roles/:role`, (req) => onSystem(req, op));
  }
  router.add(style, 'GET', `${prefix}/v3/projects/:target/users/:user/roles`, async (req) => {
    requireAdmin(req);
    const roles = await db.all<RoleRow>("SELECT r.* FROM roles r JOIN role_assignments a ON a.role_id = r.id WHERE a.actor_id = ? AND a.target_type = 'project' AND a.target_id = ? ORDER BY r.name", [req.params.user, req.params.target]);
    return { body: { roles: roles.map((r) => renderRole(req, r)), links: collectionLinks(req, 'roles') } };
  });
  router.add(style, 'GET', `${prefix}/v3/system/users/:user/roles`, async (req) => {
    requireAdmin(req);
    const roles = await db.all<RoleRow>("SELECT r.* FROM roles r JOIN role_assignments a ON a.role_id = r.id WHERE a.actor_id = ? AND a.target_type = 'system' ORDER BY r.name", [req.params.user]);
    return { body: { roles: roles.map((r) => renderRole(req, r)), links: collectionLinks(req, 'roles') } };
  });
  router.add(style, 'GET', `${prefix}/v3/role_assignments`, async (req) => {
    const a = authOf(req);
    const where: string[] = [];
    const vals: unknown[] = [];
    const q = req.query;
    if (q.get('user.id')) { where.push('a.actor_id = ?'); vals.push(q.get('user.id')); }
    if (q.get('role.id')) { where.push('a.role_id = ?'); vals.push(q.get('role.id')); }
    if (q.get('scope.project.id')) { where.push("a.target_type = 'project' AND a.target_id = ?"); vals.push(q.get('scope.project.id')); }
    if (q.has('scope.system')) where.push("a.target_type = 'system'");
    if (!a.admin && !a.roles.has('reader')) { where.push('a.actor_id = ?'); vals.push(a.token.u); }
    const rows = await db.all<{ actor_id: string; target_type: string; target_id: string; role_id: string; role_name: string; user_name: string; user_domain: string; project_name: string | null; project_domain: string | null }>(
      `SELECT a.*, r.name AS role_name, u.name AS user_name, u.domain_id AS user_domain, p.name AS project_name, p.domain_id AS project_domain
       FROM role_assignments a JOIN roles r ON r.id = a.role_id JOIN users u ON u.id = a.actor_id
       LEFT JOIN projects p ON a.target_type = 'project' AND p.id = a.target_id
       ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY u.name, r.name`, vals);
    const names = q.has('include_names');
    const domainNames = new Map((await db.all<DomainRow>('SELECT * FROM domains')).map((d) => [d.id, d.name]));
    return {
      body: {
        role_assignments: rows.map((r) => ({
          role: names ? { id: r.role_id, name: r.role_name } : { id: r.role_id },
          user: names ? { id: r.actor_id, name: r.user_name, domain: { id: r.user_domain, name: domainNames.get(r.user_domain) ?? r.user_domain } } : { id: r.actor_id },
          scope: r.target_type === 'system' ? { system: { all: true } } : { project: names ? { id: r.target_id, name: r.project_name, domain: { id: r.project_domain, name: domainNames.get(r.project_domain ?? '') ?? r.project_domain } } : { id: r.target_id } },
          links: { assignment: `${base(req)}/v3/${r.target_type === 'system' ? 'system' : `projects/${r.target_id}`}/users/${r.actor_id}/roles/${r.role_id}` },
        })),
        links: collectionLinks(req, 'role_assignments'),
      },
    };
  });

  // ---- catalog resources ----
  router.add(style, 'GET', `${prefix}/v3/services`, async (req) => {
    const cat = await identity.catalog();
    return { body: { services: cat.map((s) => ({ id: s.id, type: s.type, name: s.name, enabled: true, description: '', links: link(req, `services/${s.id}`) })), links: collectionLinks(req, 'services') } };
  });
  router.add(style, 'GET', `${prefix}/v3/endpoints`, async (req) => {
    const cat = await identity.catalog();
    const endpoints = cat.flatMap((s) => s.endpoints.map((e) => ({ id: e.id, interface: e.interface, region_id: e.region_id, region: e.region, url: e.url, service_id: s.id, enabled: true, links: link(req, `endpoints/${e.id}`) })));
    return { body: { endpoints, links: collectionLinks(req, 'endpoints') } };
  });
  router.add(style, 'GET', `${prefix}/v3/regions`, async (req) => {
    const rows = await db.all<{ id: string; description: string }>('SELECT * FROM regions ORDER BY id');
    return { body: { regions: rows.map((r) => ({ id: r.id, description: r.description, parent_region_id: null, links: link(req, `regions/${r.id}`) })), links: collectionLinks(req, 'regions') } };
  });
}
