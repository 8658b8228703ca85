/**
 * The registry of interface implementations and hardware types. Implementations register
 * themselves by name; nodes are composed from them at run time.
 */
import { HardwareType, INTERFACE_KINDS, InterfaceKind, InterfaceKinds, PropertySpec } from './interfaces.js';

const impls: { [K in InterfaceKind]: Map<string, InterfaceKinds[K]> } = Object.fromEntries(
  INTERFACE_KINDS.map((k) => [k, new Map()]),
) as never;
const types = new Map<string, HardwareType>();

export function registerInterface<K extends InterfaceKind>(kind: K, impl: InterfaceKinds[K], aliases: string[] = []): void {
  for (const name of [impl.name, ...aliases]) (impls[kind] as Map<string, InterfaceKinds[K]>).set(name, impl);
}

export function registerHardwareType(type: HardwareType): void {
  types.set(type.name, type);
}

export function hardwareType(name: string): HardwareType | undefined {
  return types.get(name);
}

export function hardwareTypes(): HardwareType[] {
  return [...types.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function getInterface<K extends InterfaceKind>(kind: K, name: string): InterfaceKinds[K] | undefined {
  return (impls[kind] as Map<string, InterfaceKinds[K]>).get(name);
}

/** The implementation names a hardware type uses by default, per kind. */
export function defaultInterfaces(type: HardwareType): Record<InterfaceKind, string> {
  return Object.fromEntries(INTERFACE_KINDS.map((k) => [k, type.supported[k][0]!])) as Record<InterfaceKind, string>;
}

/** Every driver_info property the default interfaces of a hardware type read. */
export function driverProperties(type: HardwareType): Record<string, PropertySpec> {
  const out: Record<string, PropertySpec> = {};
  for (const kind of INTERFACE_KINDS) {
    for (const name of new Set(type.supported[kind])) {
      const impl = getInterface(kind, name);
      if (impl) Object.assign(out, impl.properties);
    }
  }
  return out;
}

/** Names of driver_info properties that are secrets, across all registered implementations. */
export function secretProperties(): Set<string> {
  const out = new Set<string>();
  for (const kind of INTERFACE_KINDS) for (const impl of impls[kind].values()) {
    for (const [name, spec] of Object.entries(impl.properties)) if (spec.secret) out.add(name);
  }
  return out;
}
