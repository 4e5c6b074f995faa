/** A canary test file that fails to load: a file error must fail the run too (see fails.canary.ts). */
throw new Error('canary: this test file fails to load on purpose');
