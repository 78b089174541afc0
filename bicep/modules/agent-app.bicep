// One Container App = one agent process hosting a group of the hive's agents.
//
// Container Apps replicas are not individually addressable, so each app is a stable,
// addressable group: exactly one replica (min = max = 1). Its ingress is internal-only,
// reached by the other agents at https://<app name>.internal.<environment default domain>,
// except on the hive's entry app (external = true): TLS from the platform at
// https://<app name>.<environment default domain>, open only to allowedIps when given, and
// every request but /healthz and /readyz needs the hive token; the agent behind it
// coordinates learn, recall and ask for clients outside (`--target azure`).
// The hive token (and the optional API key) are Container App secrets, filled from secure
// parameters and handed to the container through secretRef; they never appear in plain
// environment variables, in main.parameters.json or in an output.
// Kuzu data lives on the replica's local EmptyDir volume (Azure Files has no POSIX locks):
// a restarted app's agents are rebuilt from their replicas in the other apps. The readiness
// probe (/readyz) passes only once they are, so a deployment that rolls the apps one at a
// time (main.bicep's @batchSize(1)) never restarts a second app before the first has
// rebuilt; losing every app at once (the whole environment) loses the hive's data.

@description('Container App name: <hive>-<first agent of the group>, at most 32 characters.')
@minLength(2)
@maxLength(32)
param name string

@description('Azure region of the app.')
param location string

@description('Tags of every resource (at least amplihack-hive: <hive name>).')
param tags object

@description('Resource ID of the Container Apps environment.')
param environmentId string

@description('DNS suffix of the environment (its defaultDomain).')
param environmentDomain string

@description('Resource ID of the user-assigned identity that pulls the image.')
param pullIdentityId string

@description('Agent image reference.')
param image string

@description('Registry host of the image (e.g. myregistry.azurecr.io); empty for a public image.')
param registryServer string

@description('Agents this app hosts, comma-separated.')
param agents string

@description('Every agent of the hive, comma-separated, in ring order.')
param allAgents string

@description('Where each agent of the hive is reached: agent=url pairs, comma-separated.')
param peers string

@description('Replication factor R of the hive.')
@minValue(1)
param replication int

@description('Storage backend of the agents.')
@allowed([
  'kuzu'
  'memory'
])
param backend string

@description('Kuzu buffer pool of each agent, in MB.')
@minValue(1)
param bufferPoolMb int

@description('Tokenizer version of the agents\' postings (amplihack-hive reindex).')
@minValue(1)
param tokenizer int = 1

@description('The hive\'s groups of agents (scopes group:NAME): NAME=AGENT,AGENT;... or empty.')
param groups string = ''

@description('Semantic recall: the embedder, <backend>:<model> (amplihack-hive create --embedder); empty for none.')
param embedder string = ''

@description('Semantic recall: the vector lists a question asks.')
@minValue(1)
param nprobe int = 8

@description('Key of the embeddings endpoint (an openai:MODEL embedder); empty for none.')
@secure()
param embedKey string = ''

@description('The embeddings endpoint of an openai:MODEL embedder; empty for none.')
param embedUrl string = ''

@description('vCPU of the container, as a decimal string (e.g. \'1.5\').')
param cpu string

@description('Memory of the container (twice the vCPU in Gi, e.g. \'3Gi\').')
param memory string

@description('The hive token every request between agents carries.')
@secure()
param hiveToken string

@description('Optional API key for the agents\' language model; empty for none.')
@secure()
param apiKey string = ''

@description('Port the agent process listens on inside the container.')
param port int = 8080

@description('The hive\'s entry app: external ingress (clients outside the environment reach the hive here).')
param external bool = false

@description('With external: the only client address ranges (CIDR) let in; empty for any (the token still guards every request).')
param allowedIps array = []

var dataDir = '/data'
var publicUrl = external ? 'https://${name}.${environmentDomain}' : 'https://${name}.internal.${environmentDomain}'
var ipRules = [for (range, i) in allowedIps: {
  name: 'allow-${i}'
  ipAddressRange: range
  action: 'Allow'
}]

var tokenSecrets = [
  {
    name: 'hive-token'
    value: hiveToken
  }
]
var apiKeySecrets = empty(apiKey) ? [] : [
  {
    name: 'api-key'
    value: apiKey
  }
]
var embedKeySecrets = empty(embedKey) ? [] : [
  {
    name: 'embed-key'
    value: embedKey
  }
]
var embedEnv = concat(empty(embedKey) ? [] : [
  {
    name: 'AMPLIHACK_HIVE_EMBED_KEY'
    secretRef: 'embed-key'
  }
], empty(embedUrl) ? [] : [
  {
    name: 'AMPLIHACK_HIVE_EMBED_URL'
    value: embedUrl
  }
])
var embedArgs = empty(embedder) ? [] : [
  '--embedder'
  embedder
  '--nprobe'
  string(nprobe)
]
var apiKeyEnv = empty(apiKey) ? [] : [
  {
    name: 'AMPLIHACK_HIVE_API_KEY'
    secretRef: 'api-key'
  }
]

// The probes call /healthz (alive) and /readyz (in step with its replicas), the agent's two
// unauthenticated endpoints: a probe's httpHeaders take plain values only (no secretRef), so
// sending the token there would put it in the app's template for anyone with read access.
// Each says one word and nothing else.
var healthCheck = {
  path: '/healthz'
  port: port
  scheme: 'HTTP'
}
var readyCheck = {
  path: '/readyz'
  port: port
  scheme: 'HTTP'
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${pullIdentityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: external
        targetPort: port
        transport: 'http'
        allowInsecure: false
        ipSecurityRestrictions: external ? ipRules : []
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: pullIdentityId
        }
      ]
      secrets: concat(tokenSecrets, apiKeySecrets, embedKeySecrets)
    }
    template: {
      terminationGracePeriodSeconds: 30
      containers: [
        {
          name: 'agents'
          image: image
          args: concat([
            '--hive-dir'
            '${dataDir}/hive'
            '--agents'
            agents
            '--all-agents'
            allAgents
            '--replication'
            string(replication)
            '--backend'
            backend
            '--buffer-pool-mb'
            string(bufferPoolMb)
            '--tokenizer'
            string(tokenizer)
            '--host'
            '0.0.0.0'
            '--port'
            string(port)
            '--public-url'
            publicUrl
          ], embedArgs)
          env: concat([
            {
              name: 'AMPLIHACK_HIVE_TOKEN'
              secretRef: 'hive-token'
            }
            {
              name: 'AMPLIHACK_HIVE_PEERS'
              value: peers
            }
            {
              name: 'AMPLIHACK_HIVE_GROUPS'
              value: groups
            }
          ], apiKeyEnv, embedEnv)
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Startup'
              httpGet: healthCheck
              initialDelaySeconds: 2
              periodSeconds: 3
              timeoutSeconds: 2
              failureThreshold: 10
            }
            {
              type: 'Liveness'
              httpGet: healthCheck
              periodSeconds: 10
              timeoutSeconds: 3
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: readyCheck
              periodSeconds: 5
              timeoutSeconds: 3
              failureThreshold: 3
            }
          ]
          volumeMounts: [
            {
              volumeName: 'data'
              mountPath: dataDir
            }
          ]
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 1
      }
      volumes: [
        {
          name: 'data'
          storageType: 'EmptyDir'
        }
      ]
    }
  }
}

@description('Name of the app.')
output name string = app.name

@description('Address of this app\'s agents (the hive\'s entry point when external).')
output url string = publicUrl
