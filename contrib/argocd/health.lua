-- Argo CD health check for schemagate.io/DatabaseSchema.
--   Healthy      the Ready condition is True for the latest generation
--   Degraded     the Stalled condition is True: a person must act (the message says what)
--   Progressing  anything else: no check yet, a spec the operator has not seen, a
--                migration running, tables not there yet
-- Install it under resource.customizations.health.schemagate.io_DatabaseSchema in
-- argocd-cm (docs/argocd.md).
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for schemagate's first check"

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.message = "Waiting for schemagate to check generation " .. generation ..
    " (last checked: " .. observed .. ")"
  return hs
end

local ready = nil
local stalled = nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
if ready ~= nil then
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
end
return hs
