/** Identifiers and time stamps in the shapes OpenStack uses. */
import { randomBytes, randomUUID } from 'node:crypto';

export const uuid = (): string => randomUUID();
/** Keystone-style id: 32 hex characters. */
export const hexId = (): string => randomBytes(16).toString('hex');
export const now = (): string => new Date().toISOString();

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID_RE.test(s);
/** Canonical dashed lower-case form of a UUID given with or without dashes. */
export function canonicalUuid(s: string): string {
  const h = s.replace(/-/g, '').toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const MAC_RE = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
export const isMac = (s: string): boolean => MAC_RE.test(s);
export const normalizeMac = (s: string): string => s.toLowerCase().replace(/-/g, ':');

/** OpenStack's time format in API bodies: ISO 8601 with +00:00. */
export function apiTime(iso: string | null | undefined): string | null {
  if (!iso) return null;
  return iso.replace(/\.\d+Z$/, '+00:00').replace(/Z$/, '+00:00');
}

export function generatePassword(bytes = 18): string {
  return randomBytes(bytes).toString('base64url');
}
