/**
 * Hardware interfaces. As in Ironic, a node's driver is a hardware type plus one implementation
 * per interface (power, management, boot, deploy, inspect, network, console, raid, bios, vendor,
 * rescue, storage). New hardware = a new implementation of one interface, registered by name in
 * ./registry.ts; the conductor only ever sees these types.
 */
import type { Logger } from '../util/log.js';

export type PowerState = 'power on' | 'power off' | null;
export type PowerTarget = 'power on' | 'power off' | 'rebooting' | 'soft power off' | 'soft rebooting';
export type BootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios' | 'safe' | 'wanboot';
export type BootMode = 'bios' | 'uefi';

/** A driver_info (or instance_info) property an interface reads. */
export interface PropertySpec {
  description: string;
  required?: boolean;
  /** Never shown by the API or written to logs ("******"). */
  secret?: boolean;
}

/** The node as a driver sees it (secrets included: drivers need them). */
export interface DriverNode {
  uuid: string;
  name: string | null;
  driver: string;
  driver_info: Record<string, unknown>;
  driver_internal_info: Record<string, unknown>;
  instance_info: Record<string, unknown>;
  properties: Record<string, unknown>;
  extra: Record<string, unknown>;
  provision_state: string;
  power_state: PowerState;
  boot_mode: BootMode | null;
  resource_class: string | null;
  traits: string[];
}

export interface DriverPort {
  uuid: string;
  address: string;
  pxe_enabled: boolean;
  extra: Record<string, unknown>;
}

/** The handle a driver method gets for the node it acts on, while the conductor holds its lock. */
export interface Task {
  readonly node: DriverNode;
  readonly ports: DriverPort[];
  readonly log: Logger;
  /** Aborted when the operator aborts the operation or the conductor shuts down. */
  readonly signal: AbortSignal;
  /** Persist changes to the node (merged into the stored node; keys set to undefined are removed). */
  update(changes: Partial<Pick<DriverNode, 'driver_internal_info' | 'properties' | 'instance_info' | 'boot_mode' | 'resource_class' | 'traits' | 'power_state'>>): Promise<void>;
  /** Add an entry to the node's history (shown by `ooo node history`). */
  event(message: string, severity?: 'info' | 'warning' | 'error'): Promise<void>;
  /**
   * The node's other interfaces, for implementations that orchestrate them (a deploy interface
   * powers the node and sets its boot device). Set by the conductor.
   */
  readonly driver?: { [K in InterfaceKind]: InterfaceKinds[K] };
  /** Settings of the running services a driver may need (the API URL machines reach the seed at). */
  readonly services?: {
    apiUrl?: string;
    /**
     * An image of the seed's image service (id or name) as machines fetch it: the URL of its raw
     * form, and that form's sha256 and size.
     */
    resolveImage?(ident: string): Promise<{ url: string; sha256: string; size: number }>;
    /** The URL machines fetch an image of the seed's image service at, as it is stored (kernels, initramfs); `what` names the setting in errors. */
    imageFileUrl?(ident: string, what: string): Promise<string>;
    /** Keeps bytes for the node's agent to fetch (`/v1/agent/NODE/blobs/NAME`); returns their sha256 and size. */
    putBlob?(name: string, data: Buffer): Promise<{ sha256: string; size: number }>;
  };
}

/** The outcome of a long step: finished, or waiting for the ramdisk agent to call back. */
export type StepResult = 'done' | 'wait';

/** Errors a driver throws; the conductor turns them into last_error and the API's 400s. */
export class DriverError extends Error {
  constructor(message: string, readonly code: 'invalid_parameter' | 'missing_parameter' | 'bmc_error' | 'timeout' | 'unsupported' | 'failed' = 'failed') {
    super(message);
  }
}

export interface BaseInterface {
  /** Implementation name as used in the API (`power_interface: ipmitool`). */
  readonly name: string;
  /** driver_info properties this implementation reads. */
  readonly properties: Record<string, PropertySpec>;
  /** Check the node's settings (and, where cheap, that the hardware answers). Throws DriverError. */
  validate(task: Task): Promise<void>;
}

export interface PowerInterface extends BaseInterface {
  getPowerState(task: Task): Promise<PowerState>;
  setPowerState(task: Task, target: 'power on' | 'power off' | 'soft power off', timeoutS?: number): Promise<void>;
  reboot(task: Task, soft?: boolean, timeoutS?: number): Promise<void>;
  supportedPowerStates(task: Task): PowerTarget[];
}

export interface ManagementInterface extends BaseInterface {
  supportedBootDevices(task: Task): BootDevice[];
  setBootDevice(task: Task, device: BootDevice, persistent: boolean): Promise<void>;
  getBootDevice(task: Task): Promise<{ boot_device: BootDevice | null; persistent: boolean | null }>;
}

export interface BootInterface extends BaseInterface {
  /** Make the node network-boot the deploy ramdisk (with these kernel parameters) at its next boot. */
  prepareRamdisk(task: Task, kernelParams: Record<string, string>): Promise<void>;
  cleanUpRamdisk(task: Task): Promise<void>;
  /** Make the node boot the deployed instance (usually: from local disk). */
  prepareInstance(task: Task): Promise<void>;
  cleanUpInstance(task: Task): Promise<void>;
}

export interface CleanStep {
  step: string;
  interface: 'deploy' | 'power' | 'management' | 'raid' | 'bios';
  priority: number;
  abortable?: boolean;
  argsinfo?: Record<string, { description: string; required?: boolean }>;
}

export interface DeployInterface extends BaseInterface {
  /** Write the image (instance_info) to the node. 'wait' = the agent will call back. */
  deploy(task: Task): Promise<StepResult>;
  /** Undo a deployment (power off, drop instance boot config). */
  tearDown(task: Task): Promise<void>;
  /** Clean steps this interface offers (automated cleaning runs those with priority > 0). */
  cleanSteps(task: Task): CleanStep[];
  executeCleanStep(task: Task, step: CleanStep, args: Record<string, unknown>): Promise<StepResult>;
  /** Called for each agent heartbeat while the node waits; returns 'done' when the waiting step finished. */
  heartbeat?(task: Task, payload: Record<string, unknown>): Promise<StepResult>;
  /** Before clean steps run (e.g. boot the ramdisk). 'wait' = steps run once the agent is up. */
  prepareCleaning?(task: Task): Promise<StepResult>;
  /** After cleaning finished or was aborted. */
  tearDownCleaning?(task: Task): Promise<void>;
}

export interface InspectInterface extends BaseInterface {
  /** Discover hardware properties. 'wait' = the ramdisk agent will report later. */
  inspectHardware(task: Task): Promise<StepResult>;
  /** Called for each agent call-back while inspection waits; 'done' when the inventory is in. */
  heartbeat?(task: Task, payload: Record<string, unknown>): Promise<StepResult>;
}

export interface NetworkInterface extends BaseInterface {
  addProvisioningNetwork(task: Task): Promise<void>;
  removeProvisioningNetwork(task: Task): Promise<void>;
  configureTenantNetworks(task: Task): Promise<void>;
  unconfigureTenantNetworks(task: Task): Promise<void>;
}

export interface ConsoleInterface extends BaseInterface {
  startConsole(task: Task): Promise<void>;
  stopConsole(task: Task): Promise<void>;
  getConsole(task: Task): Promise<{ type: string; url: string } | null>;
}

/** Interfaces that only validate and offer steps for now (raid, bios, vendor, rescue, storage). */
export type GenericInterface = BaseInterface;

export interface InterfaceKinds {
  power: PowerInterface;
  management: ManagementInterface;
  boot: BootInterface;
  deploy: DeployInterface;
  inspect: InspectInterface;
  network: NetworkInterface;
  console: ConsoleInterface;
  raid: GenericInterface;
  bios: GenericInterface;
  vendor: GenericInterface;
  rescue: GenericInterface;
  storage: GenericInterface;
}
export type InterfaceKind = keyof InterfaceKinds;
export const INTERFACE_KINDS: InterfaceKind[] = ['bios', 'boot', 'console', 'deploy', 'inspect', 'management', 'network', 'power', 'raid', 'rescue', 'storage', 'vendor'];

/**
 * A hardware type names, per interface kind, the implementations it supports; the first is the
 * default. (Ironic: ironic/drivers/generic.py.)
 */
export interface HardwareType {
  name: string;
  supported: { [K in InterfaceKind]: string[] };
}
