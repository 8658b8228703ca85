export * from './codec.js';
export * from './commands.js';
export * from './client.js';
export * from './server.js';
