"""The field names the emulated Gemini API takes in a generateContent body (camelCase; `gemini_parts.known` refuses
any other as the API does, "Unknown name"), the kind of value some of them take, and those asking for output the
emulator does not make, which are refused naming the field rather than answered without it."""

from __future__ import annotations

CONFIG_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
    "mediaResolution",
    "modelConfig",  # Vertex AI's model selection (GenerateContentConfig.model_selection_config)
    # Taken as the API takes them; none changes a text answer (civic answers, audio input's transcript and timestamps,
    # Vertex AI's routing), or, asking for output the emulator cannot make, is refused by name (UNMADE_OUTPUT).
    "enableEnhancedCivicAnswers",
    "audioTranscriptionConfig",
    "audioTimestamp",
    "routingConfig",
    "responseModalities",
    "speechConfig",
    "imageConfig",
}
REQUEST_FIELDS = {
    "model",
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "serviceTier",  # flex, standard, priority: the google-genai SDK sends GenerateContentConfig.service_tier here
    "store",
    "modelArmorConfig",  # Vertex AI's prompt and answer screening: the emulator's answers pass it
    "outputConfig",
    "continuationToken",
}
# Fields the API takes that ask for what the emulator does not make: each refused naming it (not answered without it).
UNMADE_OUTPUT = {
    "generationConfig.speechConfig": "answers text only; it makes no speech",
    "generationConfig.imageConfig": "answers text only; it makes no images",
    "outputConfig": "returns the answer in the response; it writes nothing to Cloud Storage",
    "continuationToken": "issues no continuation tokens, so this one is not its own; send the request without it",
}
# The value each newly taken field must have, as the API checks it (a bool, an object), and the service tiers it takes.
VALUE_KINDS: dict[str, type] = {
    "generationConfig.enableEnhancedCivicAnswers": bool,
    "generationConfig.audioTimestamp": bool,
    "generationConfig.audioTranscriptionConfig": dict,
    "generationConfig.routingConfig": dict,
    "generationConfig.modelConfig": dict,
    "modelArmorConfig": dict,
    "store": bool,
}
SERVICE_TIERS = {"unspecified", "standard", "flex", "priority"}
