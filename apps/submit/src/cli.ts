console.log("submit: not implemented yet");
