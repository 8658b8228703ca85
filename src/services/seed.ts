/**
 * Starting and stopping the seed's services in one process: the store (migrated), identity
 * (bootstrapped on first start, clouds.yaml written), the API and the conductor — or any subset.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import YAML from 'yaml';
import { openDb, Db } from '../store/db.js';
import { migrate } from '../store/schema.js';
import { Identity } from '../identity/identity.js';
import { buildApi, IDENTITY_PREFIX } from '../api/app.js';
import { BAREMETAL_PREFIX } from '../api/baremetal/common.js';
import { Conductor } from '../conductor/conductor.js';
import { configureLogging, logger } from '../util/log.js';
import type { ServiceConfig } from './config.js';
import { ProvisioningNetwork } from '../boot/provisioning.js';

const log = logger('seed');

export interface RunningSeed {
  url?: string;
  cloudsYaml: string;
  db: Db;
  conductor?: Conductor;
  provisioning?: ProvisioningNetwork;
  stop(): Promise<void>;
}

export function databaseUrlFor(cfg: { database?: string; dataDir: string }): string {
  return cfg.database || `sqlite://${join(cfg.dataDir, 'ooo.sqlite')}`;
}

export async function startSeed(cfg: ServiceConfig): Promise<RunningSeed> {
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  configureLogging({ file: join(cfg.dataDir, 'ooo.log') });
  const db = await openDb(databaseUrlFor(cfg));
  const applied = await migrate(db);
  if (applied) log.info('database schema migrated', { migrations: applied });
  const cloudsYaml = join(cfg.dataDir, 'clouds.yaml');
  let stopApi: (() => Promise<void>) | undefined;
  let provisioning: ProvisioningNetwork | undefined;
  let url: string | undefined;
  const identity = new Identity(db);
  await identity.init();

  if (cfg.only.has('api')) {
    let publicUrl = cfg.publicUrl ?? '';
    const app = buildApi(db, identity, () => publicUrl, cfg.deadAfterS, cfg.dataDir);
    const addr = await app.server.listen(cfg.port, cfg.host);
    if (!publicUrl) {
      const h = addr.address === '0.0.0.0' || addr.address === '::' ? hostname() : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      publicUrl = `http://${h}:${addr.port}`;
    }
    url = publicUrl;
    await identity.registerService('identity', 'keystone', `${publicUrl}${IDENTITY_PREFIX}`);
    await identity.registerService('baremetal', 'ironic', `${publicUrl}${BAREMETAL_PREFIX}`);
    await identity.registerService('image', 'glance', `${publicUrl}/image`);
    // Conductors hand this URL to the machines they boot (the ramdisk agent calls back to it);
    // with a provisioning network, its address replaces it once that network is up.
    await setSetting(db, 'baremetal_url', `${publicUrl}${BAREMETAL_PREFIX}`);
    // Conductors ask the image service for converted images at the address the API listens on.
    const local = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address}:${addr.port}`;
    await setSetting(db, 'api_local_url', local);
    if (cfg.provisioning) {
      const wildcard = addr.address === '0.0.0.0' || addr.address === '::';
      const plog = logger('provisioning');
      const listening = new Set([addr.address]);
      try {
        provisioning = new ProvisioningNetwork(db, { ...cfg.provisioning, port: addr.port, stateDir: join(cfg.dataDir, 'provisioning'), log: (level, m) => plog[level](m) }, {
          listenOn: async (address) => {
            if (wildcard || listening.has(address)) return;
            await app.server.listenAlso(addr.port, address);
            listening.add(address);
          },
          setMachineUrl: (base) => setSetting(db, 'baremetal_url', `${base}${BAREMETAL_PREFIX}`),
        });
        await provisioning.start();
      } catch (e) {
        // Nothing half-started stays behind: the caller gets the reason and a process that can exit.
        await provisioning?.stop().catch(() => undefined);
        await app.server.close();
        await db.close();
        throw e;
      }
    }
    const password = await identity.bootstrap(cfg.adminPassword);
    writeClouds(cloudsYaml, `${publicUrl}${IDENTITY_PREFIX}`, password, identity.region);
    stopApi = () => app.server.close();
    log.info('API listening', { url: publicUrl });
  }

  let conductor: Conductor | undefined;
  if (cfg.only.has('conductor')) {
    conductor = new Conductor(db, { hostname: cfg.conductorName, group: cfg.conductorGroup, waitTimeoutS: cfg.waitTimeoutS, powerSyncS: cfg.powerSyncS, deadAfterS: cfg.deadAfterS });
    await conductor.start();
  }

  let stopped = false;
  return {
    url, cloudsYaml, db, conductor, provisioning,
    async stop() {
      if (stopped) return;
      stopped = true;
      await provisioning?.stop();
      await stopApi?.();
      await conductor?.stop();
      await db.close();
    },
  };
}

async function setSetting(db: Db, key: string, value: string): Promise<void> {
  await db.run(db.dialect === 'sqlite'
    ? 'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'
    : 'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [key, value]);
}

/**
 * clouds.yaml for the openstack client and `ooo`: written on first start with the generated
 * admin password, re-pointed at the current URL on later starts (password kept). Mode 0600.
 */
function writeClouds(path: string, authUrl: string, newPassword: string | undefined, region: string): void {
  let password = newPassword;
  if (!password && existsSync(path)) {
    try { password = (YAML.parse(readFileSync(path, 'utf8')) as { clouds?: { ooo?: { auth?: { password?: string } } } })?.clouds?.ooo?.auth?.password; } catch { /* rewritten below */ }
  }
  if (!password) {
    if (!existsSync(path)) log.warn('the admin user exists but clouds.yaml is missing its password; set it with `ooo seed reset-password`');
    return;
  }
  const doc = {
    clouds: {
      ooo: {
        auth: { auth_url: authUrl, username: 'admin', password, project_name: 'admin', user_domain_name: 'Default', project_domain_name: 'Default' },
        region_name: region, interface: 'public', identity_api_version: 3,
      },
    },
  };
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, YAML.stringify(doc), { mode: 0o600 });
  chmodSync(path, 0o600);
}
