/**
 * sim: simulated machines with realistic delays and failures, for trying ooo without hardware.
 * The machine's state lives in driver_internal_info; timings and faults come from driver_info.
 */
import type { BootDevice, CleanStep, DeployInterface, InspectInterface, ManagementInterface, PowerInterface, PropertySpec, Task } from './interfaces.js';
import { DriverError } from './interfaces.js';
import { registerInterface } from './registry.js';
import { sleep } from './wait.js';

const PROPS: Record<string, PropertySpec> = {
  sim_delay_ms: { description: 'Milliseconds a simulated power or boot-device change takes. Optional, default 200.' },
  sim_deploy_s: { description: 'Seconds a simulated image write takes. Optional, default 2.' },
  sim_fail: { description: "Comma-separated operations that always fail on this machine: power, deploy, clean, inspect, verify; 'callback' makes its ramdisk never call back. Optional." },
  sim_fail_rate: { description: 'Probability (0-1) that a deploy or clean step fails. Optional, default 0.' },
  sim_cpus: { description: 'CPUs the machine reports on inspection. Optional, default 8.' },
  sim_memory_mb: { description: 'RAM (MiB) reported on inspection. Optional, default 16384.' },
  sim_disk_gb: { description: 'Root disk size (GiB) reported on inspection. Optional, default 100.' },
};

function num(task: Task, key: string, dflt: number, min: number, max: number): number {
  const raw = task.node.driver_info[key];
  if (raw === undefined || raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new DriverError(`driver_info.${key} must be a number from ${min} to ${max}, got '${String(raw)}'.`, 'invalid_parameter');
  return n;
}

function fails(task: Task, op: string): boolean {
  const list = String(task.node.driver_info.sim_fail ?? '').split(',').map((s) => s.trim());
  return list.includes(op);
}

async function validate(task: Task): Promise<void> {
  for (const [k, min, max] of [['sim_delay_ms', 0, 600000], ['sim_deploy_s', 0, 3600], ['sim_fail_rate', 0, 1], ['sim_cpus', 1, 4096], ['sim_memory_mb', 1, 1 << 24], ['sim_disk_gb', 1, 1 << 20]] as const) num(task, k, 0, min, max);
  if (fails(task, 'verify')) throw new DriverError('the simulated BMC does not answer (sim_fail includes verify)', 'bmc_error');
}

const delay = (task: Task) => sleep(num(task, 'sim_delay_ms', 200, 0, 600000), task.signal);
const power = (task: Task) => (task.node.driver_internal_info.sim_power as 'power on' | 'power off' | undefined) ?? 'power off';

export const simPower: PowerInterface = {
  name: 'sim', properties: PROPS, validate,
  async getPowerState(task) {
    if (fails(task, 'power')) throw new DriverError('the simulated BMC does not answer', 'bmc_error');
    return power(task);
  },
  async setPowerState(task, target) {
    if (fails(task, 'power')) throw new DriverError('the simulated BMC does not answer', 'bmc_error');
    await delay(task);
    await task.update({ driver_internal_info: { sim_power: target === 'soft power off' ? 'power off' : target } });
  },
  async reboot(task) {
    if (fails(task, 'power')) throw new DriverError('the simulated BMC does not answer', 'bmc_error');
    await delay(task);
    await task.update({ driver_internal_info: { sim_power: 'power on', sim_boots: Number(task.node.driver_internal_info.sim_boots ?? 0) + 1 } });
  },
  supportedPowerStates: () => ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'],
};

export const simManagement: ManagementInterface = {
  name: 'sim', properties: {}, validate,
  supportedBootDevices: () => ['pxe', 'disk', 'cdrom', 'bios'],
  async setBootDevice(task, device, persistent) {
    await delay(task);
    await task.update({ driver_internal_info: { sim_boot_device: device, sim_boot_persistent: persistent } });
  },
  async getBootDevice(task) {
    const d = task.node.driver_internal_info;
    return { boot_device: (d.sim_boot_device as BootDevice | undefined) ?? 'disk', persistent: (d.sim_boot_persistent as boolean | undefined) ?? true };
  },
};

const STEPS: CleanStep[] = [
  { step: 'erase_devices_metadata', interface: 'deploy', priority: 99, abortable: true },
  { step: 'erase_devices', interface: 'deploy', priority: 0, abortable: true, argsinfo: {} },
];

export const simDeploy: DeployInterface = {
  name: 'sim', properties: {},
  async validate(task) {
    await validate(task);
    if (task.node.provision_state === 'deploying' || task.node.provision_state === 'available') {
      if (!task.node.instance_info.image_source) throw new DriverError('instance_info.image_source is required to deploy: set it with `ooo node set NODE --instance-info image_source=...`.', 'missing_parameter');
    }
  },
  async deploy(task) {
    if (fails(task, 'callback')) {
      // The machine boots a ramdisk that never reports in: the conductor's wait timeout must catch it.
      await simPower.setPowerState(task, 'power on');
      return 'wait';
    }
    if (fails(task, 'deploy') || Math.random() < num(task, 'sim_fail_rate', 0, 0, 1)) {
      await sleep(200, task.signal);
      throw new DriverError('the simulated image write failed (disk error)', 'failed');
    }
    await simPower.setPowerState(task, 'power on');
    await sleep(num(task, 'sim_deploy_s', 2, 0, 3600) * 1000, task.signal);
    await task.event(`image ${String(task.node.instance_info.image_source)} written`);
    await simPower.reboot(task);
    return 'done';
  },
  async tearDown(task) { await simPower.setPowerState(task, 'power off'); },
  cleanSteps: () => STEPS,
  async executeCleanStep(task, step) {
    if (fails(task, 'clean') || Math.random() < num(task, 'sim_fail_rate', 0, 0, 1)) throw new DriverError(`the simulated ${step.step} failed`, 'failed');
    await sleep(step.step === 'erase_devices' ? 3000 : 500, task.signal);
    await task.update({ driver_internal_info: { sim_erased_at: new Date().toISOString() } });
    return 'done';
  },
};

export const simInspect: InspectInterface = {
  name: 'sim', properties: {}, validate,
  async inspectHardware(task) {
    if (fails(task, 'inspect')) throw new DriverError('the simulated ramdisk never reported in', 'failed');
    await sleep(1000, task.signal);
    await task.update({
      properties: { cpus: num(task, 'sim_cpus', 8, 1, 4096), memory_mb: num(task, 'sim_memory_mb', 16384, 1, 1 << 24), local_gb: num(task, 'sim_disk_gb', 100, 1, 1 << 20), cpu_arch: 'x86_64' },
    });
    return 'done';
  },
};

registerInterface('power', simPower);
registerInterface('management', simManagement);
registerInterface('deploy', simDeploy);
registerInterface('inspect', simInspect);
