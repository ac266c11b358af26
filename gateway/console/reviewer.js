// Stub so the shell loads; the reviewer screens (engineer "reviewer") replace this file.
export function register() {}
