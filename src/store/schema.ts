/**
 * The schema, as an ordered list of migrations. Each runs once, in a transaction, and is
 * recorded in schema_migrations. `{{serial}}` becomes the dialect's auto-increment key.
 * JSON columns are TEXT; booleans are INTEGER 0/1; times are ISO-8601 UTC TEXT.
 */
import type { Db } from './db.js';

const MIGRATIONS: { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: 'identity',
    sql: `
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domains (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id), description TEXT NOT NULL DEFAULT '',
  enabled INTEGER NOT NULL DEFAULT 1, parent_id TEXT, tags TEXT NOT NULL DEFAULT '[]', UNIQUE (domain_id, name));
CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id), password_hash TEXT,
  enabled INTEGER NOT NULL DEFAULT 1, default_project_id TEXT, email TEXT, description TEXT, options TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL, password_expires_at TEXT, UNIQUE (domain_id, name));
CREATE TABLE roles (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '');
CREATE TABLE role_assignments (actor_id TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL, role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  PRIMARY KEY (actor_id, target_type, target_id, role_id));
CREATE TABLE revocations (audit_id TEXT PRIMARY KEY, expires_at TEXT NOT NULL, revoked_at TEXT NOT NULL);
CREATE TABLE regions (id TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '');
CREATE TABLE services (id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE endpoints (id TEXT PRIMARY KEY, service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE, interface TEXT NOT NULL,
  region_id TEXT NOT NULL, url TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1);
`,
  },
  {
    id: 2,
    name: 'baremetal',
    sql: `
CREATE TABLE conductors (id {{serial}}, hostname TEXT NOT NULL UNIQUE, conductor_group TEXT NOT NULL DEFAULT '', drivers TEXT NOT NULL DEFAULT '[]',
  online INTEGER NOT NULL DEFAULT 1, alive_at TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE chassis (id {{serial}}, uuid TEXT NOT NULL UNIQUE, description TEXT, extra TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE nodes (
  id {{serial}}, uuid TEXT NOT NULL UNIQUE, name TEXT UNIQUE, chassis_id INTEGER REFERENCES chassis(id),
  driver TEXT NOT NULL, driver_info TEXT NOT NULL DEFAULT '{}', driver_internal_info TEXT NOT NULL DEFAULT '{}',
  properties TEXT NOT NULL DEFAULT '{}', instance_info TEXT NOT NULL DEFAULT '{}', instance_uuid TEXT UNIQUE, extra TEXT NOT NULL DEFAULT '{}',
  provision_state TEXT NOT NULL, target_provision_state TEXT, provision_updated_at TEXT,
  power_state TEXT, target_power_state TEXT, last_error TEXT, fault TEXT,
  maintenance INTEGER NOT NULL DEFAULT 0, maintenance_reason TEXT, console_enabled INTEGER NOT NULL DEFAULT 0,
  reservation TEXT, conductor_affinity INTEGER, conductor_group TEXT NOT NULL DEFAULT '',
  inspection_started_at TEXT, inspection_finished_at TEXT,
  resource_class TEXT, traits TEXT NOT NULL DEFAULT '[]',
  bios_interface TEXT, boot_interface TEXT, console_interface TEXT, deploy_interface TEXT, inspect_interface TEXT, management_interface TEXT,
  network_interface TEXT, power_interface TEXT, raid_interface TEXT, rescue_interface TEXT, storage_interface TEXT, vendor_interface TEXT,
  automated_clean INTEGER, protected INTEGER NOT NULL DEFAULT 0, protected_reason TEXT, owner TEXT, lessee TEXT, description TEXT,
  retired INTEGER NOT NULL DEFAULT 0, retired_reason TEXT, allocation_id INTEGER, network_data TEXT NOT NULL DEFAULT '{}',
  boot_mode TEXT, secure_boot INTEGER, shard TEXT, clean_step TEXT NOT NULL DEFAULT '{}', deploy_step TEXT NOT NULL DEFAULT '{}',
  raid_config TEXT NOT NULL DEFAULT '{}', target_raid_config TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL, updated_at TEXT);
CREATE INDEX nodes_provision_state ON nodes (provision_state);
CREATE INDEX nodes_reservation ON nodes (reservation);
CREATE TABLE portgroups (id {{serial}}, uuid TEXT NOT NULL UNIQUE, name TEXT UNIQUE, node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  address TEXT UNIQUE, mode TEXT, properties TEXT NOT NULL DEFAULT '{}', standalone_ports_supported INTEGER NOT NULL DEFAULT 1,
  extra TEXT NOT NULL DEFAULT '{}', internal_info TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE ports (id {{serial}}, uuid TEXT NOT NULL UNIQUE, name TEXT, address TEXT NOT NULL UNIQUE, node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  portgroup_id INTEGER REFERENCES portgroups(id), local_link_connection TEXT NOT NULL DEFAULT '{}', pxe_enabled INTEGER NOT NULL DEFAULT 1,
  physical_network TEXT, is_smartnic INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '{}', internal_info TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL, updated_at TEXT);
CREATE INDEX ports_node ON ports (node_id);
CREATE TABLE allocations (id {{serial}}, uuid TEXT NOT NULL UNIQUE, name TEXT UNIQUE, node_id INTEGER REFERENCES nodes(id),
  state TEXT NOT NULL, last_error TEXT, resource_class TEXT, traits TEXT NOT NULL DEFAULT '[]', candidate_nodes TEXT NOT NULL DEFAULT '[]',
  extra TEXT NOT NULL DEFAULT '{}', owner TEXT, conductor_affinity INTEGER, created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE deploy_templates (id {{serial}}, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE, steps TEXT NOT NULL DEFAULT '[]',
  extra TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE node_history (id {{serial}}, uuid TEXT NOT NULL UNIQUE, node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  conductor TEXT, event_type TEXT NOT NULL, severity TEXT NOT NULL, event TEXT NOT NULL, user_id TEXT, duration_ms INTEGER, created_at TEXT NOT NULL);
CREATE INDEX node_history_node ON node_history (node_id, id);
CREATE TABLE node_tasks (id {{serial}}, node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE, conductor TEXT NOT NULL,
  action TEXT NOT NULL, args TEXT NOT NULL DEFAULT '{}', exclusive INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'queued',
  result TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);
CREATE INDEX node_tasks_conductor ON node_tasks (conductor, status, id);
`,
  },
  {
    id: 3,
    name: 'images',
    sql: `
CREATE TABLE images (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, visibility TEXT NOT NULL, protected INTEGER NOT NULL DEFAULT 0,
  os_hidden INTEGER NOT NULL DEFAULT 0, disk_format TEXT, container_format TEXT, size BIGINT, virtual_size BIGINT, checksum TEXT,
  os_hash_algo TEXT, os_hash_value TEXT, sha256 TEXT, min_disk INTEGER NOT NULL DEFAULT 0, min_ram INTEGER NOT NULL DEFAULT 0, owner TEXT,
  properties TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_sha256 ON images (sha256);
CREATE TABLE image_tags (image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE, tag TEXT NOT NULL, PRIMARY KEY (image_id, tag));
CREATE INDEX image_tags_tag ON image_tags (tag);
`,
  },
  {
    id: 4,
    name: 'agent blobs',
    sql: `
CREATE TABLE agent_blobs (node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE, name TEXT NOT NULL, data {{blob}} NOT NULL,
  sha256 TEXT NOT NULL, size INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (node_id, name));
`,
  },
];

export async function migrate(db: Db): Promise<number> {
  // Several processes may start at once: on PostgreSQL an advisory lock serialises them.
  await db.tx(async (t) => {
    if (t.dialect === 'postgres') await t.get('SELECT pg_advisory_xact_lock(4242001)');
    await t.run('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  });
  const done = new Set((await db.all<{ id: number }>('SELECT id FROM schema_migrations')).map((r) => Number(r.id)));
  let applied = 0;
  for (const m of [...MIGRATIONS].sort((a, b) => a.id - b.id)) {
    if (done.has(m.id)) continue;
    const serial = db.dialect === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY';
    const sql = m.sql.replaceAll('{{serial}}', serial).replaceAll('{{blob}}', db.dialect === 'sqlite' ? 'BLOB' : 'BYTEA');
    await db.tx(async (t) => {
      // Another process may be migrating at the same moment: the primary key makes one win.
      if (t.dialect === 'postgres') await t.get('SELECT pg_advisory_xact_lock(4242001)');
      const again = await t.get('SELECT id FROM schema_migrations WHERE id = ?', [m.id]);
      if (again) return;
      for (const stmt of sql.split(';').map((s) => s.trim()).filter(Boolean)) await t.run(stmt);
      await t.run('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)', [m.id, m.name, new Date().toISOString()]);
      applied++;
    });
  }
  return applied;
}
