/**
 * The node resource: its fields as stored and as the bare-metal API shows them, which
 * microversion introduced each field, and secret masking. One place for all of it.
 */
export type Json = Record<string, unknown>;

/** A node row as stored (JSON columns decoded, booleans as booleans). */
export interface NodeRecord {
  id: number; uuid: string; name: string | null; chassis_id: number | null;
  driver: string; driver_info: Json; driver_internal_info: Json; properties: Json; instance_info: Json; instance_uuid: string | null; extra: Json;
  provision_state: string; target_provision_state: string | null; provision_updated_at: string | null;
  power_state: string | null; target_power_state: string | null; last_error: string | null; fault: string | null;
  maintenance: boolean; maintenance_reason: string | null; console_enabled: boolean;
  reservation: string | null; conductor_affinity: number | null; conductor_group: string;
  inspection_started_at: string | null; inspection_finished_at: string | null;
  resource_class: string | null; traits: string[];
  bios_interface: string | null; boot_interface: string | null; console_interface: string | null; deploy_interface: string | null;
  inspect_interface: string | null; management_interface: string | null; network_interface: string | null; power_interface: string | null;
  raid_interface: string | null; rescue_interface: string | null; storage_interface: string | null; vendor_interface: string | null;
  automated_clean: boolean | null; protected: boolean; protected_reason: string | null; owner: string | null; lessee: string | null;
  description: string | null; retired: boolean; retired_reason: string | null; allocation_id: number | null; network_data: Json;
  boot_mode: string | null; secure_boot: boolean | null; shard: string | null; clean_step: Json; deploy_step: Json;
  raid_config: Json; target_raid_config: Json; created_at: string; updated_at: string | null;
  /** Joined from other tables when read for the API. */
  allocation_uuid?: string | null; chassis_uuid?: string | null;
}

export const JSON_COLUMNS = new Set(['driver_info', 'driver_internal_info', 'properties', 'instance_info', 'extra', 'traits', 'network_data', 'clean_step', 'deploy_step', 'raid_config', 'target_raid_config']);
export const BOOL_COLUMNS = new Set(['maintenance', 'console_enabled', 'automated_clean', 'protected', 'retired', 'secure_boot']);
export const INTERFACE_FIELDS = ['bios_interface', 'boot_interface', 'console_interface', 'deploy_interface', 'inspect_interface', 'management_interface', 'network_interface', 'power_interface', 'raid_interface', 'rescue_interface', 'storage_interface', 'vendor_interface'] as const;

/** Decodes a stored row into a NodeRecord. */
export function decodeNode(row: Record<string, unknown>): NodeRecord {
  const out: Record<string, unknown> = { ...row };
  for (const k of JSON_COLUMNS) if (typeof out[k] === 'string') out[k] = JSON.parse(out[k] as string);
  for (const k of BOOL_COLUMNS) if (out[k] !== null && out[k] !== undefined) out[k] = !!out[k];
  return out as unknown as NodeRecord;
}

/** Encodes NodeRecord fields for storage. */
export function encodeField(k: string, v: unknown): unknown {
  if (JSON_COLUMNS.has(k)) return JSON.stringify(v ?? (k === 'traits' ? [] : {}));
  if (BOOL_COLUMNS.has(k)) return v === null || v === undefined ? null : v ? 1 : 0;
  return v ?? null;
}

/** Microversion (minor) that introduced each versioned field (ironic/api/controllers/v1/utils.py). */
export const FIELD_SINCE: Readonly<Record<string, number>> = {
  driver_internal_info: 3, name: 5, inspection_finished_at: 6, inspection_started_at: 6, clean_step: 7,
  raid_config: 12, target_raid_config: 12, network_interface: 20, resource_class: 21, storage_interface: 33,
  traits: 37, rescue_interface: 38, bios_interface: 40, fault: 42, deploy_step: 44, conductor_group: 46,
  automated_clean: 47, protected: 48, protected_reason: 48, conductor: 49, owner: 50, description: 51,
  allocation_uuid: 52, retired: 61, retired_reason: 61, lessee: 65, network_data: 66, boot_mode: 75, secure_boot: 75, shard: 82,
  boot_interface: 31, console_interface: 31, deploy_interface: 31, inspect_interface: 31, management_interface: 31,
  power_interface: 31, raid_interface: 31, vendor_interface: 31,
};

/** Every field of a node as the API shows it, in Ironic's order. */
export const API_FIELDS = [
  'uuid', 'name', 'instance_uuid', 'power_state', 'target_power_state', 'provision_state', 'target_provision_state', 'maintenance',
  'maintenance_reason', 'fault', 'last_error', 'reservation', 'driver', 'driver_info', 'driver_internal_info', 'properties',
  'instance_info', 'extra', 'chassis_uuid', 'console_enabled', 'raid_config', 'target_raid_config', 'clean_step', 'deploy_step',
  'resource_class', 'traits', 'conductor_group', 'protected', 'protected_reason', 'conductor', 'owner', 'lessee', 'shard',
  'description', 'allocation_uuid', 'automated_clean', 'network_data', 'boot_mode', 'secure_boot', 'retired', 'retired_reason',
  ...INTERFACE_FIELDS, 'inspection_finished_at', 'inspection_started_at', 'provision_updated_at', 'created_at', 'updated_at',
] as const;

/** The fields a plain (non-detailed) list shows. */
export const LIST_FIELDS = ['instance_uuid', 'maintenance', 'power_state', 'provision_state', 'uuid', 'name'];

const SECRET_KEY = /(password|passwd|secret|token|auth_key|encryption_key|configdrive|privatekey|private_key)/i;

/** Replaces the values of secret-looking keys with "******", recursively (oslo's mask_dict_password). */
export function maskSecrets(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(maskSecrets);
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) out[k] = SECRET_KEY.test(k) && x !== null && typeof x !== 'object' ? '******' : maskSecrets(x);
    return out;
  }
  return v;
}

export function fieldAllowed(field: string, minor: number): boolean {
  const since = FIELD_SINCE[field];
  return since === undefined || minor >= since;
}
