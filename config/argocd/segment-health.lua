-- Argo CD health check for Segments (users.chatbot.com/v1alpha1).
--
-- Install it under the argocd-cm key resource.customizations.health.users.chatbot.com_Segment
-- (see docs/user/gitops.md). This file is the source of truth; the Go tests in
-- internal/controller/health_test.go run it against Segments in every state.
--
-- Argo CD runs it with gopher-lua (Lua 5.1) as the body of a function, with the Segment in
-- the global obj, and without the string and math libraries. Numbers are floats.

local function findCondition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, otherwise)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return otherwise
end

-- Until the operator has written a status for this generation, the conditions describe an
-- older spec: a Stalled Segment whose spec was just fixed is Progressing, not Degraded.
-- The API server sets status.observedGeneration to -1 on create.
local generation = nil
if obj.metadata ~= nil then
  generation = tonumber(obj.metadata.generation)
end
if obj.status == nil then
  if generation == nil then
    return {status = "Progressing", message = "Waiting for the operator"}
  end
  return {status = "Progressing", message = "Waiting for the operator to observe generation " .. generation}
end
if generation ~= nil and tonumber(obj.status.observedGeneration) ~= generation then
  return {status = "Progressing", message = "Waiting for the operator to observe generation " .. generation}
end

local suspended = findCondition("Suspended")
if isTrue(suspended) or (obj.spec ~= nil and obj.spec.suspend == true) then
  return {status = "Suspended", message = messageOf(suspended, "spec.suspend is true: no remote call is made")}
end

local stalled = findCondition("Stalled")
if isTrue(stalled) then
  return {status = "Degraded", message = messageOf(stalled, "Stalled")}
end

local ready = findCondition("Ready")
if isTrue(ready) then
  return {status = "Healthy", message = messageOf(ready, "Ready")}
end
-- ObserveOnly never changes the remote segment: drift is reported (status.plan), not
-- worked on, so it is a settled state.
if ready ~= nil and ready.status == "False" and ready.reason == "DriftDetected" then
  return {status = "Healthy", message = messageOf(ready, "ObserveOnly: drift detected")}
end

return {status = "Progressing", message = messageOf(ready, "Waiting for the operator")}
