/**
 * Deploy interface `direct` and inspect interface `agent`: the node boots the deploy ramdisk,
 * whose agent inspects the hardware, erases disks, and streams the image onto the root disk,
 * verifying its checksum before the node may boot it (docs/agent-protocol.md).
 */
import type { CleanStep, DeployInterface, InspectInterface, StepResult, Task } from '../interfaces.js';
import { DriverError } from '../interfaces.js';
import { registerInterface } from '../registry.js';
import { randomBytes } from 'node:crypto';
import { AgentCommand, agentConnected, commandsOf, lastCommand, queueCommand, resetCommands } from './commands.js';
import { addPartition, PartitionError } from '../../deploy/partitions.js';
import { buildConfigDrive, ConfigDriveError } from '../../deploy/configdrive.js';

const GiB = 1024 ** 3;

interface Disk { name: string; size: number; rotational?: boolean; serial?: string; wwn?: string; model?: string; vendor?: string }
export interface Inventory { disks?: Disk[]; interfaces?: { name: string; mac_address: string; has_carrier?: boolean }[]; cpu?: { count: number; architecture: string }; memory?: { physical_mb: number }; boot?: { current_boot_mode?: string }; system_vendor?: Record<string, string> }

function driverOf(task: Task) {
  if (!task.driver) throw new DriverError('the conductor did not provide the node\'s interfaces', 'failed');
  return task.driver;
}

/** Boots the node into the deploy ramdisk: boot config, PXE next, power cycle. */
export async function bootRamdisk(task: Task): Promise<void> {
  const d = driverOf(task);
  await resetCommands(task);
  // A new token for every boot of the ramdisk: it authenticates this agent for this node only.
  const token = randomBytes(32).toString('base64url');
  await task.update({ driver_internal_info: { agent_secret_token: token } });
  const api = task.services?.apiUrl;
  if (!api) throw new DriverError('the seed\'s API URL is unknown to this conductor: start the API at least once', 'failed');
  await d.boot.prepareRamdisk(task, { 'ooo.api': api, 'ooo.token': token, 'ooo.node': task.node.uuid });
  await d.management.setBootDevice(task, 'pxe', false);
  const power = await d.power.getPowerState(task).catch(() => null);
  if (power === 'power on') await d.power.reboot(task);
  else await d.power.setPowerState(task, 'power on');
  // Recorded, so that the power-state sync does not take it for a change made outside ooo.
  await task.update({ power_state: 'power on' });
}

async function powerOffAndCleanUp(task: Task): Promise<void> {
  const d = driverOf(task);
  await d.power.setPowerState(task, 'power off');
  await task.update({ power_state: 'power off' });
  await d.boot.cleanUpRamdisk(task);
}

/** Throws the agent's own words when the last command failed. */
function checkResult(c: AgentCommand): void {
  if (c.status === 'error') throw new DriverError(`the agent's ${c.command} failed: ${c.message ?? 'no message'}`, 'failed');
}

/** The root disk: root-device hints (instance_info or properties), else the smallest disk of at least 4 GiB. */
export function chooseRootDisk(task: Task, disks: Disk[], imageSize: number): Disk {
  const hints = (task.node.instance_info.root_device ?? task.node.properties.root_device ?? {}) as Record<string, unknown>;
  let candidates = disks.filter((d) => d.size >= 4 * GiB);
  for (const [k, v] of Object.entries(hints)) {
    if (k === 'size') candidates = candidates.filter((d) => Math.floor(d.size / GiB) === Number(v));
    else if (k === 'rotational') candidates = candidates.filter((d) => !!d.rotational === (v === true || v === 'true'));
    else if (['name', 'serial', 'wwn', 'model', 'vendor'].includes(k)) candidates = candidates.filter((d) => String((d as unknown as Record<string, unknown>)[k] ?? '') === String(v) || (k === 'name' && d.name.endsWith(`/${String(v)}`)));
    else throw new DriverError(`unknown root device hint '${k}': use name, serial, wwn, model, vendor, size (GiB) or rotational`, 'invalid_parameter');
  }
  candidates.sort((a, b) => a.size - b.size);
  const fit = candidates.find((d) => d.size >= imageSize);
  if (!fit) {
    const seen = disks.map((d) => `${d.name} ${Math.round(d.size / GiB)} GiB${d.serial ? ` serial ${d.serial}` : ''}`).join(', ') || 'none';
    throw new DriverError(`no disk matches the root device hints ${JSON.stringify(hints)} and holds the ${imageSize}-byte image; the node has: ${seen}`, 'failed');
  }
  return fit;
}

/** Where the image comes from and how to verify it: an image of the seed's image service, or a URL with its checksum and size. */
export async function imageOf(task: Task): Promise<{ url: string; sha256: string; size: number }> {
  const ii = task.node.instance_info;
  const src = ii.image_source;
  if (typeof src !== 'string' || !src) throw new DriverError('instance_info.image_source is required to deploy: an image of the seed\'s image service (id or name), or an image URL (http://...) the node can reach.', 'missing_parameter');
  if (!/^https?:\/\//.test(src)) {
    if (!task.services?.resolveImage) throw new DriverError(`instance_info.image_source '${src}' is not a URL and this conductor has no image service`, 'invalid_parameter');
    return task.services.resolveImage(src);
  }
  const raw = String(ii.image_checksum ?? ii.image_os_hash_value ?? '');
  const sha256 = raw.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new DriverError('instance_info.image_checksum must be the image\'s sha256 (64 hex digits, optionally prefixed sha256:) so that the written disk can be verified.', 'missing_parameter');
  const size = Number(ii.image_size);
  if (!Number.isInteger(size) || size <= 0) throw new DriverError('instance_info.image_size must be the image\'s size in bytes (a positive integer).', 'missing_parameter');
  return { url: src, sha256, size };
}

function inventoryOf(task: Task): Inventory | undefined {
  return task.node.driver_internal_info.inspection_inventory as Inventory | undefined;
}

const STEPS: CleanStep[] = [
  { step: 'erase_devices_metadata', interface: 'deploy', priority: 99, abortable: true },
  { step: 'erase_devices', interface: 'deploy', priority: 0, abortable: true },
];

export const directDeploy: DeployInterface = {
  name: 'direct',
  properties: {},
  async validate(task) {
    if (task.node.provision_state === 'deploying' || task.node.provision_state === 'available' || task.node.provision_state === 'deploy failed' || task.node.provision_state === 'active') await imageOf(task);
  },
  async deploy(task) {
    const image = await imageOf(task);
    await task.update({ driver_internal_info: { deploy_image: image } });
    await bootRamdisk(task);
    // The deployed OS reports in with this token, which its config drive carries.
    await task.update({ driver_internal_info: { deploy_phase: 'inspect', os_report_token: randomBytes(24).toString('base64url'), os_report: undefined } });
    await queueCommand(task, 'inspect');
    return 'wait';
  },
  async heartbeat(task): Promise<StepResult> {
    const phase = task.node.driver_internal_info.deploy_phase;
    const last = lastCommand(task);
    if (task.node.provision_state === 'clean wait') {
      // Cleaning: first wait for the agent to come up (and report the disks), then for each step's command.
      if (!last) return agentConnected(task) ? 'done' : 'wait';
      if (last.status === 'pending' || last.status === 'sent') return 'wait';
      checkResult(last);
      if (last.command === 'inspect') await task.update({ driver_internal_info: { inspection_inventory: last.data } });
      return 'done';
    }
    if (!phase) return 'wait';
    if (!last || last.status === 'pending' || last.status === 'sent') return 'wait';
    checkResult(last);
    if (last.command === 'inspect') {
      const inv = last.data as Inventory;
      await task.update({ driver_internal_info: { inspection_inventory: inv } });
      const image = task.node.driver_internal_info.deploy_image as { url: string; sha256: string; size: number };
      const disk = chooseRootDisk(task, inv.disks ?? [], image.size);
      await task.update({ driver_internal_info: { root_device: disk.name, deploy_phase: 'write' } });
      await task.event(`writing the image to ${disk.name} (${Math.round(disk.size / GiB)} GiB)`);
      await queueCommand(task, 'write_image', { url: image.url, device: disk.name, sha256: image.sha256, size: image.size });
      return 'wait';
    }
    if (last.command === 'write_image') {
      await task.event(`image written and verified: ${last.message ?? ''}`);
      await writeConfigDrive(task, last);
      return 'wait';
    }
    if (last.command === 'write_blob') {
      const pending = commandsOf(task.node.driver_internal_info).filter((c) => c.command === 'write_blob' && c.status !== 'ok');
      if (pending.length) return 'wait';
      await task.event('config drive written');
      await task.update({ driver_internal_info: { deploy_phase: 'poweroff' } });
      await queueCommand(task, 'poweroff');
      return 'wait';
    }
    if (last.command === 'poweroff') {
      const d = driverOf(task);
      await d.power.setPowerState(task, 'power off');
      await d.boot.cleanUpRamdisk(task);
      await d.boot.prepareInstance(task);
      await d.management.setBootDevice(task, 'disk', true);
      await d.power.setPowerState(task, 'power on');
      await task.update({ power_state: 'power on' });
      await task.update({ driver_internal_info: { deploy_phase: undefined, agent_commands: undefined, agent_secret_token: undefined, agent_connected: undefined } });
      return 'done';
    }
    return 'wait';
  },
  async tearDown(task) {
    const d = driverOf(task);
    await d.power.setPowerState(task, 'power off');
    await task.update({ power_state: 'power off' });
    await d.boot.cleanUpInstance(task);
    await task.update({ driver_internal_info: { os_report_token: undefined, os_report: undefined, root_device: undefined, configdrive_partition: undefined, deploy_image: undefined } });
  },
  cleanSteps: () => STEPS,
  async prepareCleaning(task) {
    await bootRamdisk(task);
    // The disks to erase are the ones the agent finds now, not an old inventory.
    await queueCommand(task, 'inspect');
    return 'wait';
  },
  async executeCleanStep(task, step) {
    const disks = inventoryOf(task)?.disks;
    if (!disks) throw new DriverError('the agent reported no disk inventory before cleaning', 'failed');
    await queueCommand(task, step.step as 'erase_devices' | 'erase_devices_metadata', { devices: disks.map((d) => d.name).join(',') });
    return 'wait';
  },
  async tearDownCleaning(task) {
    await powerOffAndCleanUp(task);
    await task.update({ driver_internal_info: { agent_commands: undefined, agent_secret_token: undefined, agent_connected: undefined } });
  },
};

/**
 * After the image: a config-drive partition at the end of the root disk (the partition table
 * entry computed here from the image's first sectors, which the agent sent back).
 */
async function writeConfigDrive(task: Task, written: AgentCommand): Promise<void> {
  const put = task.services?.putBlob;
  if (!put) throw new DriverError('this conductor cannot hand files to the agent', 'failed');
  const head = Buffer.from(String((written.data as { head?: string } | null)?.head ?? ''), 'base64');
  const device = String(task.node.driver_internal_info.root_device);
  const disk = (inventoryOf(task)?.disks ?? []).find((d) => d.name === device);
  if (!disk) throw new DriverError(`the root disk ${device} is not in the inventory`, 'failed');
  const image = task.node.driver_internal_info.deploy_image as { size: number };
  const cd = task.node.instance_info.configdrive;
  let drive: Buffer;
  try {
    drive = await buildConfigDrive({
      uuid: task.node.uuid, name: task.node.name ?? task.node.uuid,
      user: cd && typeof cd === 'object' ? cd as never : undefined,
      report: { api: task.services!.apiUrl!, node: task.node.uuid, token: String(task.node.driver_internal_info.os_report_token) },
    });
  } catch (e) {
    if (e instanceof ConfigDriveError) throw new DriverError(e.message, 'failed');
    throw e;
  }
  let plan;
  try { plan = addPartition(head, image.size, disk.size, drive.length); } catch (e) {
    if (e instanceof PartitionError) throw new DriverError(`cannot add the config drive partition: ${e.message}`, 'failed');
    throw e;
  }
  const blobs = [{ name: 'configdrive', offset: plan.partitionOffset, data: drive }, ...plan.writes.map((w, i) => ({ name: `table-${i}`, offset: w.offset, data: w.data }))];
  for (const b of blobs) {
    const { sha256, size } = await put(b.name, b.data);
    await queueCommand(task, 'write_blob', { path: `/v1/agent/${task.node.uuid}/blobs/${b.name}`, device, offset: b.offset, sha256, size });
  }
  await task.update({ driver_internal_info: { deploy_phase: 'configdrive', configdrive_partition: `${device} #${plan.partitionNumber} (${plan.table})` } });
}

export const agentInspect: InspectInterface = {
  name: 'agent',
  properties: {},
  async validate() { /* the ramdisk does the work */ },
  async inspectHardware(task) {
    await bootRamdisk(task);
    await queueCommand(task, 'inspect');
    return 'wait';
  },
  async heartbeat(task) {
    const last = lastCommand(task);
    if (!last || last.command !== 'inspect' || last.status === 'pending' || last.status === 'sent') return 'wait';
    checkResult(last);
    const inv = last.data as Inventory;
    const disks = (inv.disks ?? []).filter((d) => d.size >= 4 * GiB).sort((a, b) => a.size - b.size);
    const props: Record<string, unknown> = {
      cpus: inv.cpu?.count, cpu_arch: inv.cpu?.architecture, memory_mb: inv.memory?.physical_mb,
      // As Ironic: local_gb is the root disk (smallest >= 4 GiB) in GiB, minus one for partition alignment.
      local_gb: disks.length ? Math.max(0, Math.floor(disks[0]!.size / GiB) - 1) : 0,
    };
    if (inv.boot?.current_boot_mode) props.capabilities = `boot_mode:${inv.boot.current_boot_mode}`;
    await task.update({ properties: props, driver_internal_info: { inspection_inventory: inv, agent_commands: undefined } });
    // Scheduling hints from the hardware: a resource class when the operator set none, and traits
    // (kept alongside the operator's own).
    const traits = new Set(task.node.traits);
    for (const t of task.node.traits) if (t.startsWith('CUSTOM_INSPECTED_')) traits.delete(t);
    if (inv.cpu?.architecture) traits.add(`CUSTOM_INSPECTED_ARCH_${inv.cpu.architecture.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`);
    if (inv.boot?.current_boot_mode) traits.add(`CUSTOM_INSPECTED_BOOT_${inv.boot.current_boot_mode.toUpperCase()}`);
    if (disks[0]) traits.add(disks[0].rotational ? 'CUSTOM_INSPECTED_ROOT_HDD' : 'CUSTOM_INSPECTED_ROOT_SSD');
    await task.update({ traits: [...traits].sort(), ...(task.node.resource_class ? {} : { resource_class: 'baremetal' }) });
    if (inv.boot?.current_boot_mode === 'uefi' || inv.boot?.current_boot_mode === 'bios') await task.update({ boot_mode: inv.boot.current_boot_mode });
    await powerOffAndCleanUp(task);
    await task.update({ driver_internal_info: { agent_secret_token: undefined, agent_connected: undefined } });
    return 'done';
  },
};

registerInterface('deploy', directDeploy);
registerInterface('inspect', agentInspect);
