"use strict";
// require() and import() of the ES module build give the same module instance (one copy).
const required = require("@merge/strategies");

import("@merge/strategies").then((imported) => {
  if (required.StrategyError !== imported.StrategyError) throw new Error("two copies");
  try {
    required.getStrategy("no_such_strategy");
  } catch (e) {
    if (!(e instanceof imported.StrategyError)) throw new Error("instanceof across require/import");
  }
  console.log("require and import share one copy");
});
