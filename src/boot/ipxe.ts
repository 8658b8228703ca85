/**
 * iPXE scripts. DHCP hands iPXE clients BASE/boot.ipxe (renderChainScript), which chains the
 * per-node script BASE/boot/<mac>.ipxe: a ramdisk boot (renderRamdiskScript) or boot from the
 * local disk (renderLocalBootScript).
 *
 * `exit` in a chained script returns success to the chaining script, so boot.ipxe has its own
 * `exit` right after the chain: only then does the firmware move on to the next boot device.
 */

export interface RamdiskBootOptions {
  kernelUrl: string;
  initrdUrl: string;
  /** The seed's bare-metal API as the agent reaches it (kernel arg ooo.api). */
  apiUrl: string;
  /** The one-time agent token (kernel arg ooo.token). Never log the rendered script. */
  token: string;
  /** Node UUID (kernel arg ooo.node; optional, the agent otherwise looks itself up by MAC). */
  node?: string;
  /** Console (default ttyS0,115200). */
  console?: string;
  /** More kernel arguments. */
  extraArgs?: string[];
  /** Attempts before giving up and exiting to the next boot device (default 0 = retry forever). */
  attempts?: number;
  /** Seconds between attempts (default 5). */
  retryDelayS?: number;
}

const SAFE_ARG = /^[\x21-\x7e]+$/;

function checkArg(name: string, v: string): string {
  // iPXE expands ${...} and splits on spaces: keep arguments to plain printable words.
  if (!SAFE_ARG.test(v) || v.includes('${')) throw new Error(`iPXE script: ${name} '${v}' must be printable characters without spaces or \${`);
  return v;
}

/** Kernel arguments carrying the seed URL and agent token. */
export function ramdiskKernelArgs(o: RamdiskBootOptions): string[] {
  const args = [
    `console=${checkArg('console', o.console ?? 'ttyS0,115200')}`,
    `ooo.api=${checkArg('apiUrl', o.apiUrl)}`,
    `ooo.token=${checkArg('token', o.token)}`,
  ];
  if (o.node) args.push(`ooo.node=${checkArg('node', o.node)}`);
  for (const a of o.extraArgs ?? []) args.push(checkArg('kernel argument', a));
  return args;
}

/** Boot the deploy ramdisk over HTTP; on failure retry after a delay (and, with `attempts`, give up). */
export function renderRamdiskScript(o: RamdiskBootOptions): string {
  const delay = o.retryDelayS ?? 5;
  const lines = [
    '#!ipxe',
    'set ooo-attempt:int32 0',
    ':retry',
    'imgfree',
    `kernel --name kernel ${checkArg('kernelUrl', o.kernelUrl)} initrd=initramfs ${ramdiskKernelArgs(o).join(' ')} || goto failed`,
    `initrd --name initramfs ${checkArg('initrdUrl', o.initrdUrl)} || goto failed`,
    'boot || goto failed',
    ':failed',
    'inc ooo-attempt',
    `echo ooo: ramdisk boot failed (attempt \${ooo-attempt}), retrying in ${delay} s`,
  ];
  if (o.attempts && o.attempts > 0) lines.push(`iseq \${ooo-attempt} ${o.attempts} && goto giveup ||`);
  lines.push(`sleep ${delay}`, 'goto retry');
  if (o.attempts && o.attempts > 0) lines.push(':giveup', 'echo ooo: giving up on the ramdisk, trying the next boot device', 'exit 1');
  return lines.join('\n') + '\n';
}

/** Boot from the local disk: leave iPXE so that the firmware boots the next device (the disk). */
export function renderLocalBootScript(): string {
  return '#!ipxe\necho ooo: booting from the local disk\nexit\n';
}

export interface ChainScriptOptions {
  /** Base URL of the boot HTTP server (scripts under BASE/boot/). */
  baseUrl: string;
  /** Attempts to fetch the node's script before falling through to the next boot device (default 3). */
  attempts?: number;
  retryDelayS?: number;
}

/** The script DHCP points iPXE at: chain the node's own script by MAC. */
export function renderChainScript(o: ChainScriptOptions): string {
  const base = checkArg('baseUrl', o.baseUrl.replace(/\/+$/, ''));
  const attempts = o.attempts ?? 3;
  const delay = o.retryDelayS ?? 3;
  return [
    '#!ipxe',
    'set ooo-attempt:int32 0',
    ':retry',
    `chain --autofree ${base}/boot/\${mac:hexhyp}.ipxe || goto failed`,
    // The node's script ended with `exit` (boot from disk): leave iPXE too.
    'exit',
    ':failed',
    'inc ooo-attempt',
    `iseq \${ooo-attempt} ${attempts} && goto giveup ||`,
    `echo ooo: no boot script for \${mac} yet (attempt \${ooo-attempt}), retrying in ${delay} s`,
    `sleep ${delay}`,
    'goto retry',
    ':giveup',
    'echo ooo: no boot script for ${mac}; trying the next boot device',
    'exit 1',
  ].join('\n') + '\n';
}

/** Normalise a MAC from a URL (52-54-00-..., 52:54:00:..., 525400...) to lower-case colon form. */
export function normaliseMac(s: string): string | undefined {
  const hex = s.toLowerCase().replace(/[-:]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  if (s.length !== 12 && s.length !== 17) return undefined;
  return hex.match(/../g)!.join(':');
}
