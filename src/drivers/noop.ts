/**
 * The "not supported here" implementations (Ironic's no-* and noop interfaces): they validate
 * and do nothing, or refuse with a clear message when asked to act.
 */
import { BaseInterface, ConsoleInterface, DriverError, InspectInterface, NetworkInterface } from './interfaces.js';
import { registerInterface } from './registry.js';

const refuse = (what: string, name: string) => async (): Promise<never> => {
  throw new DriverError(`${what} is not supported: the node's interface is '${name}'. Set a different interface to use it.`, 'unsupported');
};

function generic(name: string): BaseInterface {
  return { name, properties: {}, validate: async () => undefined };
}

export const noConsole: ConsoleInterface = {
  name: 'no-console', properties: {}, validate: async () => undefined,
  startConsole: refuse('The serial console', 'no-console'), stopConsole: async () => undefined, getConsole: async () => null,
};
export const noInspect: InspectInterface = {
  name: 'no-inspect', properties: {}, validate: refuse('Inspection', 'no-inspect'), inspectHardware: refuse('Inspection', 'no-inspect'),
};
export const noopNetwork: NetworkInterface = {
  name: 'noop', properties: {}, validate: async () => undefined,
  addProvisioningNetwork: async () => undefined, removeProvisioningNetwork: async () => undefined,
  configureTenantNetworks: async () => undefined, unconfigureTenantNetworks: async () => undefined,
};
/** flat: every node shares the provisioning network; nothing to switch. */
export const flatNetwork: NetworkInterface = { ...noopNetwork, name: 'flat' };

registerInterface('console', noConsole);
registerInterface('inspect', noInspect);
registerInterface('network', noopNetwork);
registerInterface('network', flatNetwork);
registerInterface('raid', generic('no-raid'));
registerInterface('bios', generic('no-bios'));
registerInterface('vendor', generic('no-vendor'));
registerInterface('storage', generic('noop'));
registerInterface('rescue', { name: 'no-rescue', properties: {}, validate: refuse('Rescue', 'no-rescue') });

