/**
 * fake-hardware: every interface succeeds at once (Ironic's fake interfaces, same names).
 * Power and boot device are remembered in driver_internal_info so that reads see writes.
 */
import type { BootDevice, BootInterface, CleanStep, ConsoleInterface, DeployInterface, InspectInterface, ManagementInterface, PowerInterface, Task } from './interfaces.js';
import { registerInterface } from './registry.js';

const ok = async () => undefined;

export const fakePower: PowerInterface = {
  name: 'fake', properties: {}, validate: ok,
  async getPowerState(task) { return (task.node.driver_internal_info.fake_power as 'power on' | 'power off' | undefined) ?? task.node.power_state ?? 'power off'; },
  async setPowerState(task, target) { await task.update({ driver_internal_info: { fake_power: target === 'soft power off' ? 'power off' : target } }); },
  async reboot(task) { await task.update({ driver_internal_info: { fake_power: 'power on' } }); },
  supportedPowerStates: () => ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'],
};

const DEVICES: BootDevice[] = ['pxe', 'disk', 'cdrom', 'bios', 'safe'];
export const fakeManagement: ManagementInterface = {
  name: 'fake', properties: {}, validate: ok,
  supportedBootDevices: () => DEVICES,
  async setBootDevice(task, device, persistent) { await task.update({ driver_internal_info: { fake_boot_device: device, fake_boot_persistent: persistent } }); },
  async getBootDevice(task) {
    const d = task.node.driver_internal_info;
    return { boot_device: (d.fake_boot_device as BootDevice | undefined) ?? 'pxe', persistent: (d.fake_boot_persistent as boolean | undefined) ?? false };
  },
};

export const fakeBoot: BootInterface = { name: 'fake', properties: {}, validate: ok, prepareRamdisk: ok, cleanUpRamdisk: ok, prepareInstance: ok, cleanUpInstance: ok };

const FAKE_STEPS: CleanStep[] = [{ step: 'erase_devices_metadata', interface: 'deploy', priority: 0, abortable: true }, { step: 'erase_devices', interface: 'deploy', priority: 0, abortable: true }];
export const fakeDeploy: DeployInterface = {
  name: 'fake', properties: {}, validate: ok,
  async deploy(task: Task) { await task.update({ driver_internal_info: { fake_power: 'power on' }, power_state: 'power on' }); return 'done'; },
  async tearDown(task: Task) { await task.update({ driver_internal_info: { fake_power: 'power off' }, power_state: 'power off' }); },
  cleanSteps: () => FAKE_STEPS,
  executeCleanStep: async () => 'done',
};

export const fakeInspect: InspectInterface = { name: 'fake', properties: {}, validate: ok, inspectHardware: async () => 'done' };
export const fakeConsole: ConsoleInterface = {
  name: 'fake', properties: {}, validate: ok, startConsole: ok, stopConsole: ok,
  getConsole: async () => ({ type: 'shellinabox', url: 'http://localhost:4321' }),
};

registerInterface('power', fakePower);
registerInterface('management', fakeManagement);
registerInterface('boot', fakeBoot);
registerInterface('deploy', fakeDeploy);
registerInterface('inspect', fakeInspect);
registerInterface('console', fakeConsole);
for (const kind of ['raid', 'bios', 'vendor', 'rescue', 'storage'] as const) registerInterface(kind, { name: 'fake', properties: {}, validate: ok });
