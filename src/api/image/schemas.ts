/** Minimal JSON schemas of the image entity and list, as Glance publishes under /v2/schemas. */
import { CONTAINER_FORMATS, DISK_FORMATS } from '../../images/store.js';

export function imageSchema(): Record<string, unknown> {
  const str = (description: string, extra: Record<string, unknown> = {}) => ({ type: ['null', 'string'], description, ...extra });
  return {
    name: 'image',
    properties: {
      id: { type: 'string', pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$', description: 'An identifier for the image' },
      name: str('Descriptive name for the image', { maxLength: 255 }),
      status: { type: 'string', readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'], description: 'Status of the image' },
      visibility: { type: 'string', enum: ['community', 'public', 'private', 'shared'], description: 'Scope of image accessibility' },
      protected: { type: 'boolean', description: 'If true, image will not be deletable.' },
      os_hidden: { type: 'boolean', description: 'If true, image will not appear in default image list response.' },
      checksum: str('md5 hash of image contents.', { readOnly: true, maxLength: 32 }),
      os_hash_algo: str('Algorithm to calculate the os_hash_value', { readOnly: true, maxLength: 64 }),
      os_hash_value: str('Hexdigest of the image contents using the algorithm specified by the os_hash_algo', { readOnly: true, maxLength: 128 }),
      owner: str('Owner of the image', { maxLength: 255 }),
      size: { type: ['null', 'integer'], readOnly: true, description: 'Size of image file in bytes' },
      virtual_size: { type: ['null', 'integer'], readOnly: true, description: 'Virtual size of image in bytes' },
      container_format: { type: ['null', 'string'], enum: [null, ...CONTAINER_FORMATS], description: 'Format of the container' },
      disk_format: { type: ['null', 'string'], enum: [null, ...DISK_FORMATS], description: 'Format of the disk' },
      created_at: { type: 'string', readOnly: true, description: 'Date and time of image registration' },
      updated_at: { type: 'string', readOnly: true, description: 'Date and time of the last image modification' },
      tags: { type: 'array', items: { type: 'string', maxLength: 255 }, description: 'List of strings related to the image' },
      min_ram: { type: 'integer', description: 'Amount of ram (in MB) required to boot image.' },
      min_disk: { type: 'integer', description: 'Amount of disk space (in GB) required to boot image.' },
      self: { type: 'string', readOnly: true, description: 'An image self url' },
      file: { type: 'string', readOnly: true, description: 'An image file url' },
      schema: { type: 'string', readOnly: true, description: 'An image schema url' },
    },
    additionalProperties: { type: 'string' },
    links: [{ rel: 'self', href: '{self}' }, { rel: 'enclosure', href: '{file}' }, { rel: 'describedby', href: '{schema}' }],
  };
}

export function imagesSchema(): Record<string, unknown> {
  return {
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema() },
      schema: { type: 'string' },
      first: { type: 'string' },
      next: { type: 'string' },
    },
    links: [{ rel: 'first', href: '{first}' }, { rel: 'next', href: '{next}' }, { rel: 'describedby', href: '{schema}' }],
  };
}
