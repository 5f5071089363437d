import { DEFAULT_STRATEGY, getStrategy } from "@merge/strategies";
import scenario from "./scenario.cjs";

console.log(`merge ${scenario({ getStrategy, DEFAULT_STRATEGY })}`);
