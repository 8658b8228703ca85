/**
 * Shared Redfish vocabulary: reset types, boot override values and the error body shape.
 */

export const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'PowerCycle', 'PushPowerButton'] as const;
export type ResetType = (typeof RESET_TYPES)[number];

export const BOOT_TARGETS = ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export type BootEnabled = (typeof BOOT_ENABLED)[number];
export const BOOT_MODES = ['Legacy', 'UEFI'] as const;
export type BootMode = (typeof BOOT_MODES)[number];

export interface RedfishBoot {
  BootSourceOverrideTarget?: BootTarget | string;
  BootSourceOverrideEnabled?: BootEnabled | string;
  BootSourceOverrideMode?: BootMode | string;
}

export interface ExtendedInfo {
  MessageId?: string;
  Message?: string;
  Severity?: string;
  Resolution?: string;
  [k: string]: unknown;
}

/** A Redfish error body: {"error": {"code", "message", "@Message.ExtendedInfo": [...]}}. */
export function errorBody(code: string, message: string, resolution?: string): { error: { code: string; message: string; '@Message.ExtendedInfo': ExtendedInfo[] } } {
  return {
    error: {
      code: `Base.1.8.${code}`,
      message,
      '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: `Base.1.8.${code}`, Message: message, Severity: 'Warning', ...(resolution ? { Resolution: resolution } : {}) }],
    },
  };
}
