/** Waiting inside a driver operation: a sleep that ends early, with a DriverError, when the operation is aborted. */
import { DriverError } from './interfaces.js';

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(new DriverError('aborted', 'failed')); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(new DriverError('aborted', 'failed')); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
