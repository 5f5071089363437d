"use strict";
const { getStrategy, DEFAULT_STRATEGY } = require("@merge/strategies");
const scenario = require("./scenario.cjs");

console.log(`merge ${scenario({ getStrategy, DEFAULT_STRATEGY })}`);
