// The dashboard's linter: ESLint's and typescript-eslint's recommended rules (`npm run lint`, run by make test).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-test/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly', console: 'readonly' },
    },
  },
  {
    // The debug hooks are compiled into the browser-test build only: main.ts installs them behind
    // TEST_BUILD (testBuild.ts). An import anywhere else would carry them into the production bundle.
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/debug'], message: 'debug.ts is for test builds: only main.ts installs it, behind TEST_BUILD.' }] },
      ],
    },
  },
);
