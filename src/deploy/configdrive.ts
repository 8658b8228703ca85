/**
 * The config drive: an OpenStack-format FAT filesystem labelled config-2
 * (openstack/latest/meta_data.json, user_data, network_data.json) that the deployed OS reads
 * at boot. Besides the operator's own data it carries how the OS reports in to the seed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CONFIG_DRIVE_BYTES = 64 * 1024 * 1024;

export interface ConfigDriveInput {
  uuid: string;
  name: string;
  /** The operator's configdrive: {meta_data, user_data, network_data}. */
  user?: { meta_data?: Record<string, unknown>; user_data?: string; network_data?: Record<string, unknown> };
  /** How the deployed OS reports in. */
  report: { api: string; node: string; token: string };
}

export class ConfigDriveError extends Error {}

export async function buildConfigDrive(input: ConfigDriveInput): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-configdrive-'));
  try {
    const tree = join(dir, 'tree');
    const latest = join(tree, 'openstack', 'latest');
    mkdirSync(latest, { recursive: true });
    const hostname = (input.name || input.uuid).replace(/[^A-Za-z0-9-]/g, '-').slice(0, 63);
    const meta = {
      uuid: input.uuid, name: input.name, hostname, launch_index: 0, availability_zone: null, public_keys: {}, meta: {},
      ...(input.user?.meta_data ?? {}),
      ooo: input.report,
    };
    writeFileSync(join(latest, 'meta_data.json'), JSON.stringify(meta, null, 1));
    writeFileSync(join(latest, 'network_data.json'), JSON.stringify(input.user?.network_data ?? { links: [], networks: [], services: [] }));
    if (input.user?.user_data !== undefined) writeFileSync(join(latest, 'user_data'), input.user.user_data);
    const img = join(dir, 'config-2.img');
    try {
      await run('mkfs.vfat', ['-C', '-n', 'config-2', '-i', input.uuid.replace(/-/g, '').slice(0, 8), img, String(CONFIG_DRIVE_BYTES / 1024)]);
      await run('mcopy', ['-s', '-i', img, join(tree, 'openstack'), '::']);
    } catch (e) {
      throw new ConfigDriveError(`could not build the config drive (needs dosfstools and mtools): ${(e as Error).message}`);
    }
    return readFileSync(img);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
