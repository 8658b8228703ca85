/**
 * Identity: users, projects, domains, roles, role assignments (on projects and on the system),
 * the service catalog, and tokens. Tokens are signed (HMAC-SHA256 with a key kept in the store)
 * and carry their scope and roles, so validating one costs no database read; revocations are
 * rows in the store, cached and refreshed every few seconds so several API processes agree.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Db } from '../store/db.js';
import { generatePassword, hexId, now } from '../util/ids.js';
import { hashPassword, verifyPassword } from './passwords.js';

export const DEFAULT_DOMAIN = 'default';
export const ROLES = ['admin', 'member', 'reader'] as const;

export interface TokenData {
  /** user id, name, domain id */
  u: string; un: string; ud: string;
  /** project scope: id, name, domain id */
  p?: string; pn?: string; pd?: string;
  /** system scope */
  s?: 1;
  /** roles: [id, name] */
  r: [string, string][];
  m: string[];
  /** issued at, expires at (ms since epoch) */
  i: number; e: number;
  a: string;
}

export class AuthError extends Error {
  constructor(message: string, readonly status: 401 | 403 | 404 | 400 = 401) { super(message); }
}

export interface UserRow { id: string; name: string; domain_id: string; password_hash: string | null; enabled: number; default_project_id: string | null; email: string | null; description: string | null; options: string; created_at: string; password_expires_at: string | null }
export interface ProjectRow { id: string; name: string; domain_id: string; description: string; enabled: number; parent_id: string | null; tags: string }
export interface RoleRow { id: string; name: string; description: string }
export interface DomainRow { id: string; name: string; description: string; enabled: number }

interface Revocation { audit_id: string; expires_at: string; revoked_at: string }

export interface IdentityOptions {
  tokenTtlS?: number;
  region?: string;
}

export class Identity {
  private key!: Buffer;
  private revoked = new Map<string, number>(); // audit_id or 'user:ID' / 'project:ID' -> revoked_at ms
  private revokedLoadedAt = 0;
  private catalogCache?: { at: number; value: CatalogEntry[] };
  readonly tokenTtlS: number;
  readonly region: string;

  constructor(readonly db: Db, opts: IdentityOptions = {}) {
    this.tokenTtlS = opts.tokenTtlS ?? 3600 * 12;
    this.region = opts.region ?? 'RegionOne';
  }

  /** Loads (or creates) the token signing key and the built-in domain and roles. */
  async init(): Promise<void> {
    await this.db.tx(async (t) => {
      let row = await t.get<{ value: string }>("SELECT value FROM settings WHERE key = 'token_key'");
      if (!row) {
        const value = generatePassword(32);
        await t.run("INSERT INTO settings (key, value) VALUES ('token_key', ?)", [value]);
        row = { value };
      }
      this.key = Buffer.from(row.value);
      if (!(await t.get('SELECT id FROM domains WHERE id = ?', [DEFAULT_DOMAIN]))) {
        await t.run("INSERT INTO domains (id, name, description, enabled) VALUES (?, 'Default', 'The default domain', 1)", [DEFAULT_DOMAIN]);
      }
      for (const name of ROLES) {
        if (!(await t.get('SELECT id FROM roles WHERE name = ?', [name]))) await t.run('INSERT INTO roles (id, name) VALUES (?, ?)', [hexId(), name]);
      }
    });
    await this.loadRevocations(true);
  }

  /**
   * First start: the admin user and project, with the admin role on both the project and the
   * system. Returns the generated password, or undefined when the admin already exists.
   */
  async bootstrap(adminPassword?: string): Promise<string | undefined> {
    if (await this.db.get("SELECT id FROM users WHERE name = 'admin' AND domain_id = ?", [DEFAULT_DOMAIN])) return undefined;
    const password = adminPassword ?? generatePassword();
    const project = await this.createProject({ name: 'admin', description: 'Bootstrap project for the administrator' });
    const user = await this.createUser({ name: 'admin', password, default_project_id: project.id });
    const admin = (await this.roleByName('admin'))!;
    await this.assignRole(user.id, 'project', project.id, admin.id);
    await this.assignRole(user.id, 'system', 'all', admin.id);
    return password;
  }

  // ---- tokens ----

  private sign(data: string): string {
    return createHmac('sha256', this.key).update(data).digest('base64url');
  }

  encode(t: TokenData): string {
    const body = Buffer.from(JSON.stringify(t)).toString('base64url');
    return `o1${body}.${this.sign(body)}`;
  }

  /** Tokens whose signature was already checked (the check is the costly part). */
  private verified = new Map<string, TokenData>();

  /** Checks a token's signature, expiry and revocation. */
  async validate(token: string): Promise<TokenData> {
    const known = this.verified.get(token);
    if (known) return this.checkLive(known);
    if (!token.startsWith('o1')) throw new AuthError('The request you have made requires authentication.');
    const dot = token.indexOf('.');
    if (dot < 0) throw new AuthError('The request you have made requires authentication.');
    const body = token.slice(2, dot);
    const mac = Buffer.from(token.slice(dot + 1));
    const want = Buffer.from(this.sign(body));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) throw new AuthError('The request you have made requires authentication.');
    let t: TokenData;
    try { t = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenData; } catch { throw new AuthError('The request you have made requires authentication.'); }
    if (this.verified.size >= 10_000) this.verified.clear();
    this.verified.set(token, t);
    return this.checkLive(t);
  }

  /** Expiry and revocation: checked on every use. */
  private async checkLive(t: TokenData): Promise<TokenData> {
    if (Date.now() >= t.e) throw new AuthError('The token has expired.');
    await this.loadRevocations(false);
    if (this.revoked.has(t.a)) throw new AuthError('The token has been revoked.');
    const byUser = this.revoked.get(`user:${t.u}`);
    if (byUser !== undefined && t.i <= byUser) throw new AuthError('The token has been revoked.');
    if (t.p) {
      const byProject = this.revoked.get(`project:${t.p}`);
      if (byProject !== undefined && t.i <= byProject) throw new AuthError('The token has been revoked.');
    }
    return t;
  }

  private async loadRevocations(force: boolean): Promise<void> {
    if (!force && Date.now() - this.revokedLoadedAt < 2000) return;
    this.revokedLoadedAt = Date.now();
    const rows = await this.db.all<Revocation>('SELECT audit_id, expires_at, revoked_at FROM revocations WHERE expires_at > ?', [now()]);
    const m = new Map<string, number>();
    for (const r of rows) m.set(r.audit_id, Date.parse(r.revoked_at));
    this.revoked = m;
  }

  /** Revokes one token (by its audit id), or every token of a user or project issued until now. */
  async revoke(key: string, expiresAt: number): Promise<void> {
    const at = Date.now();
    await this.db.run(
      this.db.dialect === 'sqlite'
        ? 'INSERT INTO revocations (audit_id, expires_at, revoked_at) VALUES (?, ?, ?) ON CONFLICT (audit_id) DO UPDATE SET expires_at = excluded.expires_at, revoked_at = excluded.revoked_at'
        : 'INSERT INTO revocations (audit_id, expires_at, revoked_at) VALUES (?, ?, ?) ON CONFLICT (audit_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, revoked_at = EXCLUDED.revoked_at',
      [key, new Date(expiresAt).toISOString(), new Date(at).toISOString()],
    );
    this.revoked.set(key, at);
  }

  private revokeAllFor(kind: 'user' | 'project', id: string): Promise<void> {
    return this.revoke(`${kind}:${id}`, Date.now() + this.tokenTtlS * 1000);
  }

  /** Password authentication with an optional scope; returns the new token and its data. */
  async authenticate(req: AuthRequest): Promise<{ token: string; data: TokenData }> {
    let user: UserRow | undefined;
    let methods: string[];
    let inherited: TokenData | undefined;
    if (req.password) {
      const p = req.password;
      if (p.userId) user = await this.db.get<UserRow>('SELECT * FROM users WHERE id = ?', [p.userId]);
      else {
        const domainId = await this.resolveDomain(p.domainId, p.domainName);
        user = await this.db.get<UserRow>('SELECT * FROM users WHERE name = ? AND domain_id = ?', [p.userName, domainId]);
      }
      // The same message whatever was wrong, as Keystone does: no user enumeration.
      if (!user || !(await verifyPassword(p.password, user.password_hash))) throw new AuthError('The request you have made requires authentication.');
      if (!user.enabled) throw new AuthError('The request you have made requires authentication.');
      methods = ['password'];
    } else if (req.token) {
      inherited = await this.validate(req.token);
      user = await this.db.get<UserRow>('SELECT * FROM users WHERE id = ?', [inherited.u]);
      if (!user || !user.enabled) throw new AuthError('The request you have made requires authentication.');
      methods = [...new Set([...inherited.m, 'token'])];
    } else {
      throw new AuthError('Expecting to find identity.methods with password or token in auth.', 400);
    }
    const issued = Date.now();
    const data: TokenData = {
      u: user.id, un: user.name, ud: user.domain_id, r: [], m: methods, i: issued,
      e: inherited ? Math.min(inherited.e, issued + this.tokenTtlS * 1000) : issued + this.tokenTtlS * 1000,
      a: hexId().slice(0, 22),
    };
    let scope = req.scope;
    if (!scope && user.default_project_id) scope = { projectId: user.default_project_id, implicit: true };
    if (scope?.system) {
      const roles = await this.rolesOn(user.id, 'system', 'all');
      if (!roles.length) throw new AuthError('The request you have made requires authentication.');
      data.s = 1;
      data.r = roles.map((r) => [r.id, r.name]);
    } else if (scope && (scope.projectId || scope.projectName)) {
      let project: ProjectRow | undefined;
      if (scope.projectId) project = await this.db.get<ProjectRow>('SELECT * FROM projects WHERE id = ?', [scope.projectId]);
      else {
        const domainId = await this.resolveDomain(scope.domainId, scope.domainName);
        project = await this.db.get<ProjectRow>('SELECT * FROM projects WHERE name = ? AND domain_id = ?', [scope.projectName, domainId]);
      }
      if (!project || !project.enabled) {
        if (!scope.implicit) throw new AuthError('The request you have made requires authentication.');
      } else {
        const roles = await this.rolesOn(user.id, 'project', project.id);
        if (!roles.length) {
          if (!scope.implicit) throw new AuthError('The request you have made requires authentication.');
        } else {
          data.p = project.id; data.pn = project.name; data.pd = project.domain_id;
          data.r = roles.map((r) => [r.id, r.name]);
        }
      }
    }
    return { token: this.encode(data), data };
  }

  private async resolveDomain(id?: string, name?: string): Promise<string> {
    if (id) return id;
    if (name) {
      const d = await this.db.get<DomainRow>('SELECT * FROM domains WHERE name = ? OR id = ?', [name, name]);
      if (!d) throw new AuthError('The request you have made requires authentication.');
      return d.id;
    }
    return DEFAULT_DOMAIN;
  }

  // ---- users, projects, roles ----

  async createUser(u: { name: string; password?: string; domain_id?: string; default_project_id?: string | null; email?: string | null; description?: string | null; enabled?: boolean }): Promise<UserRow> {
    const row: UserRow = {
      id: hexId(), name: u.name, domain_id: u.domain_id ?? DEFAULT_DOMAIN, password_hash: u.password ? await hashPassword(u.password) : null,
      enabled: u.enabled === false ? 0 : 1, default_project_id: u.default_project_id ?? null, email: u.email ?? null, description: u.description ?? null,
      options: '{}', created_at: now(), password_expires_at: null,
    };
    await this.db.run(
      'INSERT INTO users (id, name, domain_id, password_hash, enabled, default_project_id, email, description, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.name, row.domain_id, row.password_hash, row.enabled, row.default_project_id, row.email, row.description, row.options, row.created_at],
    );
    return row;
  }

  async updateUser(id: string, changes: { name?: string; password?: string; enabled?: boolean; default_project_id?: string | null; email?: string | null; description?: string | null }): Promise<void> {
    const sets: string[] = [];
    const vals: unknown[] = [];
    for (const k of ['name', 'default_project_id', 'email', 'description'] as const) if (changes[k] !== undefined) { sets.push(`${k} = ?`); vals.push(changes[k]); }
    if (changes.enabled !== undefined) { sets.push('enabled = ?'); vals.push(changes.enabled ? 1 : 0); }
    if (changes.password !== undefined) { sets.push('password_hash = ?'); vals.push(await hashPassword(changes.password)); }
    if (sets.length) await this.db.run(`UPDATE users SET ${sets.join(', ')} WHERE id = ?`, [...vals, id]);
    if (changes.enabled === false || changes.password !== undefined) await this.revokeAllFor('user', id);
  }

  async deleteUser(id: string): Promise<void> {
    await this.db.tx(async (t) => {
      await t.run('DELETE FROM role_assignments WHERE actor_id = ?', [id]);
      await t.run('DELETE FROM users WHERE id = ?', [id]);
    });
    await this.revokeAllFor('user', id);
  }

  async createProject(p: { name: string; domain_id?: string; description?: string; enabled?: boolean; parent_id?: string | null; tags?: string[] }): Promise<ProjectRow> {
    const row: ProjectRow = { id: hexId(), name: p.name, domain_id: p.domain_id ?? DEFAULT_DOMAIN, description: p.description ?? '', enabled: p.enabled === false ? 0 : 1, parent_id: p.parent_id ?? null, tags: JSON.stringify(p.tags ?? []) };
    await this.db.run('INSERT INTO projects (id, name, domain_id, description, enabled, parent_id, tags) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.name, row.domain_id, row.description, row.enabled, row.parent_id, row.tags]);
    return row;
  }

  async updateProject(id: string, changes: { name?: string; description?: string; enabled?: boolean; tags?: string[] }): Promise<void> {
    const sets: string[] = [];
    const vals: unknown[] = [];
    if (changes.name !== undefined) { sets.push('name = ?'); vals.push(changes.name); }
    if (changes.description !== undefined) { sets.push('description = ?'); vals.push(changes.description); }
    if (changes.enabled !== undefined) { sets.push('enabled = ?'); vals.push(changes.enabled ? 1 : 0); }
    if (changes.tags !== undefined) { sets.push('tags = ?'); vals.push(JSON.stringify(changes.tags)); }
    if (sets.length) await this.db.run(`UPDATE projects SET ${sets.join(', ')} WHERE id = ?`, [...vals, id]);
    if (changes.enabled === false) await this.revokeAllFor('project', id);
  }

  async deleteProject(id: string): Promise<void> {
    await this.db.tx(async (t) => {
      await t.run("DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = ?", [id]);
      await t.run('DELETE FROM projects WHERE id = ?', [id]);
    });
    await this.revokeAllFor('project', id);
  }

  roleByName(name: string): Promise<RoleRow | undefined> {
    return this.db.get<RoleRow>('SELECT * FROM roles WHERE name = ?', [name]);
  }

  async rolesOn(actorId: string, targetType: 'project' | 'system', targetId: string): Promise<RoleRow[]> {
    const direct = await this.db.all<RoleRow>(
      'SELECT r.* FROM roles r JOIN role_assignments a ON a.role_id = r.id WHERE a.actor_id = ? AND a.target_type = ? AND a.target_id = ? ORDER BY r.name',
      [actorId, targetType, targetId],
    );
    // Implied roles, as Keystone's defaults: admin implies member, member implies reader.
    const names = new Set(direct.map((r) => r.name));
    if (names.has('admin')) names.add('member');
    if (names.has('member')) names.add('reader');
    if (names.size === direct.length) return direct;
    const all = await this.db.all<RoleRow>('SELECT * FROM roles ORDER BY name');
    return all.filter((r) => names.has(r.name));
  }

  async assignRole(actorId: string, targetType: 'project' | 'system', targetId: string, roleId: string): Promise<void> {
    await this.db.run(
      'INSERT INTO role_assignments (actor_id, target_type, target_id, role_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [actorId, targetType, targetId, roleId],
    );
  }

  async unassignRole(actorId: string, targetType: 'project' | 'system', targetId: string, roleId: string): Promise<boolean> {
    const r = await this.db.run('DELETE FROM role_assignments WHERE actor_id = ? AND target_type = ? AND target_id = ? AND role_id = ?', [actorId, targetType, targetId, roleId]);
    if (r.changes) await this.revokeAllFor('user', actorId);
    return r.changes > 0;
  }

  // ---- catalog ----

  /** Registers (or re-points) the endpoints of a service; called by the seed at start. */
  async registerService(type: string, name: string, url: string): Promise<void> {
    await this.db.tx(async (t) => {
      let svc = await t.get<{ id: string }>('SELECT id FROM services WHERE type = ? AND name = ?', [type, name]);
      if (!svc) {
        svc = { id: hexId() };
        await t.run('INSERT INTO services (id, type, name, enabled) VALUES (?, ?, ?, 1)', [svc.id, type, name]);
      }
      if (!(await t.get('SELECT id FROM regions WHERE id = ?', [this.region]))) await t.run('INSERT INTO regions (id) VALUES (?)', [this.region]);
      for (const iface of ['public', 'internal', 'admin']) {
        const ep = await t.get<{ id: string }>('SELECT id FROM endpoints WHERE service_id = ? AND interface = ? AND region_id = ?', [svc.id, iface, this.region]);
        if (ep) await t.run('UPDATE endpoints SET url = ? WHERE id = ?', [url, ep.id]);
        else await t.run('INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled) VALUES (?, ?, ?, ?, ?, 1)', [hexId(), svc.id, iface, this.region, url]);
      }
    });
    this.catalogCache = undefined;
  }

  async catalog(): Promise<CatalogEntry[]> {
    if (this.catalogCache && Date.now() - this.catalogCache.at < 5000) return this.catalogCache.value;
    const services = await this.db.all<{ id: string; type: string; name: string }>('SELECT id, type, name FROM services WHERE enabled = 1 ORDER BY type');
    const endpoints = await this.db.all<{ id: string; service_id: string; interface: string; region_id: string; url: string }>('SELECT * FROM endpoints WHERE enabled = 1 ORDER BY interface');
    const value = services.map((s) => ({
      id: s.id, type: s.type, name: s.name,
      endpoints: endpoints.filter((e) => e.service_id === s.id).map((e) => ({ id: e.id, interface: e.interface, region_id: e.region_id, region: e.region_id, url: e.url })),
    }));
    this.catalogCache = { at: Date.now(), value };
    return value;
  }
}

export interface CatalogEntry { id: string; type: string; name: string; endpoints: { id: string; interface: string; region_id: string; region: string; url: string }[] }

export interface AuthRequest {
  password?: { userId?: string; userName?: string; domainId?: string; domainName?: string; password: string };
  token?: string;
  scope?: { system?: boolean; projectId?: string; projectName?: string; domainId?: string; domainName?: string; implicit?: boolean };
}
