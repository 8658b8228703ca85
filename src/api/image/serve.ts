/**
 * Serving images to machines: plain HTTP, no token, meant for the provisioning network (the
 * deploy ramdisk streams the image it writes from here). An image is named by id or by name.
 *
 *   GET /images/{id|name}       the data as stored
 *   GET /images/{id|name}/raw   the raw form: qcow2 (vdi, vhd, vhdx) converted once by qemu-img
 *                               into a cache shared by all requests; raw and iso as stored
 *
 * Both answer HEAD and single byte ranges, and say what they send: Content-Length,
 * X-Image-Sha256 (of the bytes served) and ETag. Memory use is flat whatever the image size.
 */
import type { Request, Router } from '../http.js';
import { ApiError, conflict, notFound } from '../http.js';
import { canonicalUuid, isUuid } from '../../util/ids.js';
import { ImageDataError } from '../../images/store.js';
import { getImage, Image } from './images.js';
import { fileResponse } from './files.js';
import type { ImageContext } from './routes.js';

export const SERVE_PREFIX = '/images';

async function find(ctx: ImageContext, ident: string): Promise<Image> {
  let img: Image | undefined;
  if (ident.includes('\u0000')) throw notFound('No image with a NUL character in its name.');
  if (isUuid(ident)) img = await getImage(ctx.db, canonicalUuid(ident));
  if (!img) {
    const rows = await ctx.db.all<{ id: string }>("SELECT id FROM images WHERE name = ? AND status IN ('active', 'deactivated')", [ident]);
    if (rows.length > 1) throw conflict(`${rows.length} images are named '${ident}': ask for one by id.`);
    if (rows.length === 1) img = await getImage(ctx.db, rows[0]!.id);
  }
  if (!img) throw notFound(`No image '${ident}'.`);
  if (img.status === 'deactivated') throw new ApiError(403, `Image ${img.id} is deactivated.`);
  if (img.status !== 'active' || !img.sha256) throw new ApiError(409, `Image ${img.id} has no data yet (status ${img.status}).`);
  return img;
}

const rangeOf = (req: Request) => (typeof req.headers.range === 'string' ? req.headers.range : undefined);

export function serveRoutes(router: Router, ctx: ImageContext): void {
  const pub = { style: 'plain' as const, public: true };
  router.add(pub, 'GET', `${SERVE_PREFIX}/:ident`, async (req) => {
    const img = await find(ctx, req.params.ident!);
    return fileResponse(ctx.store().blobPath(img.sha256!), {
      method: req.method, range: rangeOf(req), md5: img.checksum, what: `image ${img.id}`,
      headers: { 'X-Image-Id': img.id, 'X-Image-Sha256': img.sha256!, ETag: `"${img.sha256}"`, 'X-Image-Disk-Format': img.disk_format ?? '' },
    });
  });
  router.add(pub, 'GET', `${SERVE_PREFIX}/:ident/raw`, async (req) => {
    const img = await find(ctx, req.params.ident!);
    let raw;
    try {
      raw = await ctx.store().raw(img.sha256!, img.disk_format ?? '', img.size ?? 0);
    } catch (e) {
      if (e instanceof ImageDataError) throw new ApiError(e.status, `image ${img.id}: ${e.message}`);
      throw e;
    }
    return fileResponse(raw.path, {
      method: req.method, range: rangeOf(req), what: `image ${img.id} (raw)`,
      headers: { 'X-Image-Id': img.id, 'X-Image-Sha256': raw.sha256, ETag: `"${raw.sha256}"`, 'X-Image-Disk-Format': 'raw' },
    });
  });
}
