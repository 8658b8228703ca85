/**
 * Boot interface `ipxe`: the node network-boots through the seed's DHCP (src/boot/provisioning.ts)
 * into iPXE, which fetches the node's own script from the seed (GET /boot/<mac>.ipxe, rendered by
 * bootScriptFor below from the node's state): the deploy ramdisk with the seed's URL and the
 * node's one-time agent token on the kernel command line, or "boot from the local disk".
 *
 * The script is not a file the conductor writes: it is made from the node's driver_internal_info
 * at the moment the machine asks, so every API process serves the same answer and nothing is
 * left behind when a node is deleted.
 */
import type { BootInterface, Task } from './interfaces.js';
import { DriverError } from './interfaces.js';
import { registerInterface } from './registry.js';
import { renderLocalBootScript, renderRamdiskScript } from '../boot/ipxe.js';

/** Image names used when driver_info has no deploy_kernel / deploy_ramdisk. */
export const DEFAULT_DEPLOY_KERNEL = 'ooo-deploy-kernel';
export const DEFAULT_DEPLOY_RAMDISK = 'ooo-deploy-ramdisk';

/** What the node's next network boot does (driver_internal_info.ipxe_boot). */
export type IpxeBoot =
  | { mode: 'ramdisk'; kernel_url: string; ramdisk_url: string; args: Record<string, string> }
  | { mode: 'local' };

const HOWTO = 'build it with `ooo image build -t ramdisk -o deploy busybox deploy-ramdisk` and upload deploy.kernel and deploy.initramfs to the image service '
  + `(\`ooo image upload --name ${DEFAULT_DEPLOY_KERNEL} --disk-format aki deploy.kernel\`, \`ooo image upload --name ${DEFAULT_DEPLOY_RAMDISK} --disk-format ari deploy.initramfs\`), `
  + 'or set driver_info.deploy_kernel and driver_info.deploy_ramdisk to image ids or http:// URLs';

async function deployFileUrl(task: Task, key: 'deploy_kernel' | 'deploy_ramdisk', fallback: string): Promise<string> {
  const v = task.node.driver_info[key];
  if (v !== undefined && v !== null && v !== '') {
    if (typeof v !== 'string' || /\s/.test(v)) throw new DriverError(`driver_info.${key} must be an image id or name of the seed's image service, or an http:// URL, got '${String(v)}'.`, 'invalid_parameter');
    if (/^https?:\/\//.test(v)) return v;
    if (!task.services?.imageFileUrl) throw new DriverError(`driver_info.${key} '${v}' is not a URL and this conductor has no image service`, 'invalid_parameter');
    return task.services.imageFileUrl(v, `driver_info.${key}`);
  }
  if (!task.services?.imageFileUrl) throw new DriverError(`driver_info.${key} is not set: ${HOWTO}.`, 'missing_parameter');
  try {
    return await task.services.imageFileUrl(fallback, `driver_info.${key}`);
  } catch (e) {
    throw new DriverError(`driver_info.${key} is not set and the seed's image service has no usable image named '${fallback}' (${(e as Error).message}): ${HOWTO}.`, 'missing_parameter');
  }
}

function checkPorts(task: Task): void {
  if (!task.ports.some((p) => p.pxe_enabled)) {
    throw new DriverError('the node has no PXE-enabled port: the seed only answers DHCP for MAC addresses of enrolled ports (add one with `ooo port create MAC --node NODE`).', 'missing_parameter');
  }
}

export const ipxeBoot: BootInterface = {
  name: 'ipxe',
  properties: {
    deploy_kernel: { description: `Kernel of the deploy ramdisk: an image of the seed's image service (id or name) or an http:// URL. Default: the image named ${DEFAULT_DEPLOY_KERNEL}.` },
    deploy_ramdisk: { description: `Initramfs of the deploy ramdisk: an image of the seed's image service (id or name) or an http:// URL. Default: the image named ${DEFAULT_DEPLOY_RAMDISK}.` },
  },
  async validate(task) {
    checkPorts(task);
    await deployFileUrl(task, 'deploy_kernel', DEFAULT_DEPLOY_KERNEL);
    await deployFileUrl(task, 'deploy_ramdisk', DEFAULT_DEPLOY_RAMDISK);
  },
  async prepareRamdisk(task, kernelParams) {
    checkPorts(task);
    const kernel = await deployFileUrl(task, 'deploy_kernel', DEFAULT_DEPLOY_KERNEL);
    const ramdisk = await deployFileUrl(task, 'deploy_ramdisk', DEFAULT_DEPLOY_RAMDISK);
    // The token stays where it already is (agent_secret_token); the script takes it from there.
    const args = Object.fromEntries(Object.entries(kernelParams).filter(([k]) => k !== 'ooo.token'));
    const boot: IpxeBoot = { mode: 'ramdisk', kernel_url: kernel, ramdisk_url: ramdisk, args };
    await task.update({ driver_internal_info: { ipxe_boot: boot } });
  },
  async cleanUpRamdisk(task) {
    if ((task.node.driver_internal_info.ipxe_boot as IpxeBoot | undefined)?.mode === 'ramdisk') await task.update({ driver_internal_info: { ipxe_boot: undefined } });
  },
  async prepareInstance(task) {
    const boot: IpxeBoot = { mode: 'local' };
    await task.update({ driver_internal_info: { ipxe_boot: boot } });
  },
  async cleanUpInstance(task) {
    if ((task.node.driver_internal_info.ipxe_boot as IpxeBoot | undefined)?.mode === 'local') await task.update({ driver_internal_info: { ipxe_boot: undefined } });
  },
};

registerInterface('boot', ipxeBoot);

/**
 * The iPXE script for a node's next network boot, from its driver_internal_info; undefined when
 * the node is not set up to network-boot (the chain script then falls through to the next boot
 * device).
 */
export function bootScriptFor(info: Record<string, unknown>): string | undefined {
  const boot = info.ipxe_boot as IpxeBoot | undefined;
  if (!boot) return undefined;
  if (boot.mode === 'local') return renderLocalBootScript();
  const token = info.agent_secret_token;
  if (typeof token !== 'string' || !token) return undefined;
  const { 'ooo.api': apiUrl, 'ooo.node': node, ...rest } = boot.args;
  if (!apiUrl) return undefined;
  return renderRamdiskScript({
    kernelUrl: boot.kernel_url, initrdUrl: boot.ramdisk_url, apiUrl, token, node,
    extraArgs: Object.entries(rest).map(([k, v]) => `${k}=${v}`),
  });
}
