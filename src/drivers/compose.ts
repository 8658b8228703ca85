/**
 * Hardware types and how a node's driver is assembled from its interface fields (or the
 * hardware type's defaults). The only place that knows which implementations exist.
 */
import { HardwareType, INTERFACE_KINDS, InterfaceKind, InterfaceKinds } from './interfaces.js';
import { defaultInterfaces, getInterface, hardwareType, registerHardwareType } from './registry.js';
import './noop.js';
import './fake.js';
import './sim.js';
import './agent/direct.js';
import './ipmi.js';
import './redfish.js';
import './ipxe.js';

registerHardwareType({
  name: 'fake-hardware',
  supported: {
    bios: ['no-bios', 'fake'], boot: ['fake', 'ipxe'], console: ['no-console', 'fake'], deploy: ['fake', 'direct'], inspect: ['fake', 'agent', 'no-inspect'],
    management: ['fake'], network: ['noop', 'flat'], power: ['fake'], raid: ['no-raid', 'fake'], rescue: ['fake', 'no-rescue'],
    storage: ['noop', 'fake'], vendor: ['no-vendor', 'fake'],
  },
});
registerHardwareType({
  name: 'sim',
  supported: {
    bios: ['no-bios'], boot: ['fake'], console: ['no-console'], deploy: ['sim', 'fake'], inspect: ['sim', 'no-inspect'],
    management: ['sim'], network: ['flat', 'noop'], power: ['sim'], raid: ['no-raid'], rescue: ['no-rescue'],
    storage: ['noop'], vendor: ['no-vendor'],
  },
});

// Real machines: power and management through their BMC; the deploy ramdisk does the rest.
for (const [name, bmc] of [['ipmi', 'ipmi'], ['redfish', 'redfish']] as const) {
  registerHardwareType({
    name,
    supported: {
      bios: ['no-bios'], boot: ['ipxe', 'fake'], console: ['no-console'], deploy: ['direct', 'fake'], inspect: ['agent', 'no-inspect'],
      management: [bmc], network: ['flat', 'noop'], power: [bmc], raid: ['no-raid'], rescue: ['no-rescue'],
      storage: ['noop'], vendor: ['no-vendor'],
    },
  });
}

export type ResolvedDriver = { [K in InterfaceKind]: InterfaceKinds[K] };

export class DriverCompositionError extends Error {}

/** The interface implementation names a node uses, per kind. */
export function interfaceNames(node: { driver: string } & Partial<Record<`${InterfaceKind}_interface`, string | null>>): Record<InterfaceKind, string> {
  const type = hardwareType(node.driver);
  if (!type) throw new DriverCompositionError(`The driver '${node.driver}' is unknown.`);
  const defaults = defaultInterfaces(type);
  const out = {} as Record<InterfaceKind, string>;
  for (const kind of INTERFACE_KINDS) out[kind] = node[`${kind}_interface`] ?? defaults[kind];
  return out;
}

/** Checks an interface choice against the hardware type; returns an error message or undefined. */
export function checkInterface(type: HardwareType, kind: InterfaceKind, name: string): string | undefined {
  if (!type.supported[kind].includes(name) || !getInterface(kind, name)) {
    return `Could not find a suitable ${kind} interface '${name}' for hardware type '${type.name}'; supported: ${type.supported[kind].join(', ')}.`;
  }
  return undefined;
}

export function resolveDriver(node: { driver: string } & Partial<Record<`${InterfaceKind}_interface`, string | null>>): ResolvedDriver {
  const names = interfaceNames(node);
  const out = {} as Record<InterfaceKind, unknown>;
  for (const kind of INTERFACE_KINDS) {
    const impl = getInterface(kind, names[kind]);
    if (!impl) throw new DriverCompositionError(`The ${kind} interface '${names[kind]}' of node driver '${node.driver}' is not available in this conductor.`);
    out[kind] = impl;
  }
  return out as ResolvedDriver;
}
