import { greet } from "./greet";

console.log(greet({ name: "frontend" }));
