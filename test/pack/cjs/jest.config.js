module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testMatch: ['**/test/*.spec.ts'],
  testTimeout: 120000,
};
